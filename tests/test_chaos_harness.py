"""The chaos harness's own parts, on made-up data: a check that cannot see a lost webhook,
a double charge or an unbalanced ledger would let ``tests/test_chaos.py`` pass for nothing."""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from tests.support.chaos.checks import (
    check_idempotency,
    check_ledger,
    check_stale_gets,
    check_webhooks,
)
from tests.support.chaos.load import Answer
from tests.support.chaos.plan import VICTIMS, Window, issue_plan, random_plan
from tests.support.chaos.receiver import ChaosReceiver, Post
from tests.support.chaos.report import Recovery, Report

COMPLETED = "video.generation.completed"


def job(job_id: str, status: str = "completed", **fields: Any) -> Any:
    values = {"account_id": "acct_1", "metadata": {}, "credits_charged": 3, **fields}
    return SimpleNamespace(id=job_id, status=status, **values)


def post(job_id: str, webhook_id: str, event: str = COMPLETED) -> Post:
    return Post(0.0, "/hooks/0", webhook_id, job_id, event, event.rsplit(".", 1)[1])


def entry(job_id: str | None, delta: int, reason: str, account: str = "acct_1") -> Any:
    return SimpleNamespace(account_id=account, job_id=job_id, delta=delta, reason=reason)


def empty_report(windows: list[Window] | None = None) -> Report:
    return Report(60.0, Recovery(100.0, 5.0, 6.0), windows or [], started_at=0.0)


def test_the_receiver_records_posts_refuses_while_stopped_and_comes_back_on_its_port() -> None:
    receiver = ChaosReceiver()
    receiver.start()
    try:
        url = receiver.url
        body = {"id": "vgen_1", "event": COMPLETED, "status": "completed"}
        httpx.post(f"{url}/hooks/0", json=body, headers={"webhook-id": "dlv_1"})

        receiver.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.post(f"{url}/hooks/0", json=body)

        receiver.start()
        assert receiver.url == url
        httpx.post(f"{url}/hooks/0", json=body, headers={"webhook-id": "dlv_1"})
    finally:
        receiver.stop()
    first, second = receiver.posts()
    assert (first.webhook_id, first.job_id, first.event, first.status, first.path) == (
        "dlv_1", "vgen_1", COMPLETED, "completed", "/hooks/0"
    )  # fmt: skip
    assert first.terminal and second.at >= first.at


def test_repeated_posts_second_webhook_ids_and_missing_webhooks_are_each_counted() -> None:
    report = empty_report()
    rows = [job("vgen_a"), job("vgen_b"), job("vgen_c", "failed"), job("vgen_d", "processing")]
    posts = [
        post("vgen_a", "dlv_a"),
        post("vgen_a", "dlv_a"),  # the same webhook twice
        post("vgen_b", "dlv_b1"),
        post("vgen_b", "dlv_b2"),  # a second delivery for one job
        post("vgen_c", "dlv_c", "video.generation.status_changed"),  # not terminal
    ]
    check_webhooks(report, rows, posts)
    assert report.duplicate_posts == 1
    assert report.jobs_with_several_webhook_ids == ["vgen_b"]
    assert report.terminal_without_webhook == ["vgen_c"]  # vgen_d is not terminal yet
    assert report.webhook_posts == 5


def test_books_that_do_not_add_up_are_named() -> None:
    report = empty_report()
    rows = [
        job("vgen_ok"),
        job("vgen_twice_debited"),
        job("vgen_failed_unrefunded", "failed"),
        job("vgen_refunded_twice", "failed"),
        job("vgen_completed_refunded"),
    ]
    ledger = [
        entry(None, 100, "signup"),
        entry("vgen_ok", -3, "debit"),
        entry("vgen_twice_debited", -3, "debit"),
        entry("vgen_twice_debited", -3, "debit"),
        entry("vgen_failed_unrefunded", -3, "debit"),
        entry("vgen_refunded_twice", -3, "debit"),
        entry("vgen_refunded_twice", 3, "refund"),
        entry("vgen_refunded_twice", 3, "refund"),
        entry("vgen_completed_refunded", -3, "debit"),
        entry("vgen_completed_refunded", 3, "refund"),
        entry(None, 10, "signup", account="acct_2"),
    ]
    check_ledger(report, rows, ledger, {"acct_1": 91, "acct_2": -1})  # 100 - 18 + 9
    assert report.unbalanced_accounts == ["acct_2 (-1 vs 10)"]
    assert report.negative_balances == ["acct_2"]
    assert report.debit_not_once == ["vgen_twice_debited (2)"]
    assert report.refunded_twice == ["vgen_refunded_twice (2)"]
    assert report.failed_not_refunded == ["vgen_failed_unrefunded", "vgen_refunded_twice"]
    assert report.completed_but_refunded == ["vgen_completed_refunded"]


def test_two_jobs_under_one_idempotency_key_are_a_double_charge() -> None:
    report = empty_report()
    rows = [
        job("vgen_1", metadata={"chaos_key": "k1"}),
        job("vgen_2", metadata={"chaos_key": "k1"}, credits_charged=6),
        job("vgen_3", metadata={"chaos_key": "k2"}),
    ]
    check_idempotency(report, rows, answered={"vgen_1", "vgen_3"})
    assert report.keys_with_several_jobs == ["k1 (2 jobs)"]
    assert (report.extra_jobs, report.extra_credits) == (1, 6)
    assert report.jobs_without_answer == ["vgen_2"]


def test_a_5xx_is_put_down_to_the_fault_just_before_it() -> None:
    windows = [
        Window("receiver_down", 4.0, 44.0),
        Window("db_terminate", 16.0, 16.1),
        Window("api_kill", 18.0, 22.0),
    ]
    report = empty_report(windows)
    report.server_errors = [
        Answer(16.3, "submit", 500, None),
        Answer(17.0, "get", 503, None),
        Answer(90.0, "get", 500, None),
    ]
    described = report.describe_server_errors()
    assert "1x 500 to submit at t=16.3s, db_terminate" in described
    assert "1x 503 to get at t=17.0s, db_terminate" in described
    assert "1x 500 to get at t=90.0s, no fault near" in described
    assert any(p.startswith("5xx answered to valid requests: 3") for p in report.problems())


def test_a_clean_report_has_no_problems_and_a_slow_recovery_is_one() -> None:
    assert empty_report().problems() == []
    slow = Report(60.0, Recovery(100.0, 5.0, 75.0), [], started_at=0.0)
    (problem,) = slow.problems()
    assert problem.startswith("recovery: not within 60s") and "75.0s" in problem


def test_random_plans_hold_the_issues_faults_within_the_span_never_two_on_one_process() -> None:
    wanted = Counter(fault.kind for fault in issue_plan())
    assert wanted == Counter({"worker_kill": 2, "redis_flushall": 1, "redis_kill": 1,
                              "db_terminate": 1, "api_kill": 1, "receiver_down": 1})  # fmt: skip
    for seed in range(50):
        plan = random_plan(random.Random(seed), span=60.0)
        assert Counter(fault.kind for fault in plan) == wanted
        assert all(0 <= fault.at <= 60.0 for fault in plan)
        for a in plan:
            for b in plan:
                if a is not b and VICTIMS[a.kind] == VICTIMS[b.kind] and a.at <= b.at:
                    assert b.at >= a.at + a.down
    assert random_plan(random.Random(7), 60.0) == random_plan(random.Random(7), 60.0)


def test_a_get_showing_a_job_unfinished_long_after_it_ended_is_stale() -> None:
    report = empty_report()
    chain = [
        {"status": "pending", "at": "2026-01-01T00:00:00+00:00"},
        {"status": "completed", "at": "2026-01-01T00:01:00+00:00"},
    ]
    ended_at = 1767225660.0  # 2026-01-01T00:01:00Z
    rows = [job("vgen_1", status_chain=chain), job("vgen_2", "processing", status_chain=[])]
    answers = [
        Answer(0.0, "get", 200, None, job_id="vgen_1", shown="processing", wall=ended_at + 3),
        Answer(0.0, "get", 200, None, job_id="vgen_1", shown="processing", wall=ended_at + 42),
        Answer(0.0, "get", 200, None, job_id="vgen_1", shown="completed", wall=ended_at + 50),
        Answer(0.0, "get", 200, None, job_id="vgen_2", shown="pending", wall=ended_at + 99),
    ]
    check_stale_gets(report, rows, answers)
    assert report.stale_gets == ["vgen_1 (processing 42s after completed)"]
    assert (report.stale_jobs, report.longest_stale_seconds) == (1, 42.0)
