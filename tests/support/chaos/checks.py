"""What a chaos run must show afterwards, measured as counts in one :class:`Report`.

* every job terminal in the database, and every terminal job's webhook received, within
  ``deadline`` seconds of the end of the last fault (the time it took is measured);
* exactly one terminal ``webhook-id`` per job; POSTs that repeat a ``webhook-id`` are
  counted apart from jobs that got several ``webhook-id`` values;
* no negative balance; each account's balance equal to the sum of its ledger; per job one
  debit and at most one refund, a refund for each failed or canceled job and none for a
  completed one;
* no 5xx answered to a valid request (the database is never down in these runs: cutting
  its connections leaves it up), each one listed with its time and the fault around it;
* every ``GET /v1/video/generations/{id}`` agrees with the database at the end (status,
  and where ``output_url`` points), and none during the run shows a job unfinished more
  than ``STALE_SECONDS`` after the database recorded it terminal;
* one job per ``Idempotency-Key`` (the load writes the key in each job's metadata).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa

from backend.jobs.states import TERMINAL_STATUSES
from backend.store.tables import accounts, credit_ledger, jobs
from tests.support.chaos.load import GENERATIONS, Answer, LoadGenerator
from tests.support.chaos.plan import Window
from tests.support.chaos.receiver import Post
from tests.support.chaos.report import STALE_SECONDS, Recovery, Report
from tests.support.chaos.stack import Account

TERMINAL = {status.value for status in TERMINAL_STATUSES}
#: How often the wait for recovery says how many jobs and webhooks are still out.
PROGRESS_SECONDS = 30.0


def wait_for_recovery(
    engine: sa.Engine,
    posts: Callable[[], list[Post]],
    last_fault_end: float,
    timeout: float,
    log: Callable[[str], None] = lambda line: None,
) -> Recovery:
    """Watch the database and the receiver until every job is terminal and every terminal
    job's webhook is in, or ``timeout`` seconds after the last fault ended; say how many
    are still out every ``PROGRESS_SECONDS``."""
    terminal_at = webhooks_at = None
    deadline = last_fault_end + timeout
    next_note = last_fault_end + PROGRESS_SECONDS
    while True:
        now = time.monotonic()
        statuses = _statuses(engine)
        open_jobs = [job_id for job_id, status in statuses.items() if status not in TERMINAL]
        if not open_jobs and terminal_at is None:
            terminal_at = now
        hooked = {p.job_id for p in posts() if p.terminal}
        missing = [j for j, s in statuses.items() if s in TERMINAL and j not in hooked]
        if not open_jobs and not missing and webhooks_at is None:
            webhooks_at = now
        if (terminal_at is not None and webhooks_at is not None) or now > deadline:
            break
        if now >= next_note:
            log(f"{now - last_fault_end:5.0f}s after the last fault: {len(open_jobs)} jobs "
                f"not terminal, {len(missing)} terminal jobs without their webhook")  # fmt: skip
            next_note += PROGRESS_SECONDS
        time.sleep(0.5)

    def after(at: float | None) -> float | None:
        return None if at is None else max(0.0, at - last_fault_end)

    return Recovery(last_fault_end, after(terminal_at), after(webhooks_at))


def _statuses(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.id: r.status for r in conn.execute(sa.select(jobs.c.id, jobs.c.status))}


def check(
    *,
    engine: sa.Engine,
    api_url: str,
    accounts_used: list[Account],
    load: LoadGenerator,
    posts: list[Post],
    windows: list[Window],
    recovery: Recovery,
    deadline_seconds: float,
) -> Report:
    report = Report(deadline_seconds, recovery, windows, load.started_at)
    check_submissions(report, load)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                jobs.c.id, jobs.c.account_id, jobs.c.status, jobs.c.metadata,
                jobs.c.output_url, jobs.c.output_key, jobs.c.credits_charged,
                jobs.c.refunded_at, jobs.c.status_chain,
            )
        ).all()  # fmt: skip
        ledger = conn.execute(
            sa.select(credit_ledger.c.account_id, credit_ledger.c.job_id,
                      credit_ledger.c.delta, credit_ledger.c.reason)
        ).all()  # fmt: skip
        balances = {r.id: r.credits for r in conn.execute(sa.select(accounts))}
    report.jobs = len(rows)
    report.states = Counter(r.status for r in rows)
    report.not_terminal = [r.id for r in rows if r.status not in TERMINAL]
    check_webhooks(report, rows, posts)
    check_ledger(report, rows, ledger, balances)
    check_idempotency(report, rows, {j for sub in load.submissions for j in sub.job_ids})
    check_stale_gets(report, rows, load.answers())
    check_gets(report, rows, api_url, {a.id: a for a in accounts_used})
    return report


def check_submissions(report: Report, load: LoadGenerator) -> None:
    answers = load.answers()
    report.submissions = len(load.submissions)
    for sub in load.submissions:
        if sub.final_status is None:
            report.given_up += 1
        elif sub.final_status < 300:
            report.accepted += 1
        else:
            report.refused[sub.final_status] += 1
        report.retried_submissions += sub.tries > 1
    report.replayed_answers = sum(a.replayed for a in answers)
    report.answers = Counter(f"{a.kind} {a.status or a.error}" for a in answers)
    report.server_errors = [a for a in answers if a.status is not None and a.status >= 500]


def check_webhooks(report: Report, rows: Sequence[Any], posts: list[Post]) -> None:
    report.webhook_posts = len(posts)
    terminal = [p for p in posts if p.terminal]
    seen: Counter[str] = Counter(p.webhook_id for p in terminal)
    report.duplicate_posts = sum(n - 1 for n in seen.values())
    ids_per_job: dict[str, set[str]] = defaultdict(set)
    for post in terminal:
        ids_per_job[post.job_id].add(post.webhook_id)
    report.jobs_with_several_webhook_ids = [j for j, ids in ids_per_job.items() if len(ids) > 1]
    report.terminal_without_webhook = [
        r.id for r in rows if r.status in TERMINAL and r.id not in ids_per_job
    ]


def check_ledger(
    report: Report, rows: Sequence[Any], ledger: Sequence[Any], balances: dict[str, int]
) -> None:
    sums: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for entry in ledger:
        sums[entry.account_id] += entry.delta
        if entry.job_id is not None:
            reasons[entry.job_id][entry.reason] += 1
    report.negative_balances = [a for a, credits in balances.items() if credits < 0]
    report.unbalanced_accounts = [
        f"{a} ({credits} vs {sums[a]})" for a, credits in balances.items() if credits != sums[a]
    ]
    for row in rows:
        kinds = reasons[row.id]
        if kinds["debit"] != 1:
            report.debit_not_once.append(f"{row.id} ({kinds['debit']})")
        if kinds["refund"] > 1:
            report.refunded_twice.append(f"{row.id} ({kinds['refund']})")
        if row.status in ("failed", "canceled") and kinds["refund"] != 1:
            report.failed_not_refunded.append(row.id)
        if row.status == "completed" and kinds["refund"]:
            report.completed_but_refunded.append(row.id)


def check_idempotency(report: Report, rows: Sequence[Any], answered: set[str]) -> None:
    """Jobs per key (from each job's metadata), and jobs whose client never heard of
    them (``answered`` holds the ids the API answered with)."""
    by_key: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_key[str((row.metadata or {}).get("chaos_key"))].append(row)
    for key, made in by_key.items():
        if len(made) > 1:
            report.keys_with_several_jobs.append(f"{key} ({len(made)} jobs)")
            report.extra_jobs += len(made) - 1
            report.extra_credits += sum(r.credits_charged for r in made[1:])
    report.jobs_without_answer = [r.id for r in rows if r.id not in answered]


def check_stale_gets(report: Report, rows: Sequence[Any], answers: list[Answer]) -> None:
    """GETs answered more than ``STALE_SECONDS`` after the job's terminal transition (its
    time as the database's status chain recorded it) that still showed another status."""
    ended: dict[str, tuple[str, float]] = {}
    for row in rows:
        final = [entry for entry in row.status_chain if entry.get("status") in TERMINAL]
        if row.status in TERMINAL and final:
            ended[row.id] = (row.status, datetime.fromisoformat(final[0]["at"]).timestamp())
    stale_jobs = set()
    for answer in answers:
        if answer.kind != "get" or answer.shown is None or answer.job_id not in ended:
            continue
        status, at = ended[answer.job_id]
        behind = answer.wall - at
        if answer.shown != status and behind > STALE_SECONDS:
            report.stale_gets.append(
                f"{answer.job_id} ({answer.shown} {behind:.0f}s after {status})"
            )
            stale_jobs.add(answer.job_id)
            report.longest_stale_seconds = max(report.longest_stale_seconds, behind)
    report.stale_jobs = len(stale_jobs)


def check_gets(
    report: Report, rows: Sequence[Any], api_url: str, owners: dict[str, Account]
) -> None:
    def compare(row: Any) -> str | None:
        owner = owners[row.account_id]
        try:
            with httpx.Client(timeout=10, trust_env=False) as client:
                response = client.get(f"{api_url}{GENERATIONS}/{row.id}", headers=owner.headers)
        except httpx.HTTPError as exc:
            return f"{row.id} (GET {type(exc).__name__})"
        if response.status_code != 200:
            return f"{row.id} (GET {response.status_code})"
        seen = response.json()
        expected = _output_path(row)
        given = urlsplit(seen["output_url"]).path if seen.get("output_url") else None
        if seen["status"] != row.status or given != expected:
            return f"{row.id} (GET {seen['status']} {given}, database {row.status} {expected})"
        return None

    with ThreadPoolExecutor(4) as pool:
        report.get_mismatches = [m for m in pool.map(compare, rows) if m is not None]


def _output_path(row: Any) -> str | None:
    """Where the job's ``output_url`` must point: genhook's own link to a kept video, or
    the provider's URL when the copy never got in."""
    if row.output_key is not None:
        return f"/v1/outputs/{row.id}"
    return urlsplit(row.output_url).path if row.output_url else None
