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
from dataclasses import dataclass, field
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
from tests.support.chaos.stack import Account

TERMINAL = {status.value for status in TERMINAL_STATUSES}
#: A 5xx this long after a fault ended is still put down to it in the report.
FAULT_AFTERMATH_SECONDS = 10.0
#: How often the wait for recovery says how many jobs and webhooks are still out.
PROGRESS_SECONDS = 30.0
#: A GET may lag the database by this much (the status cache is refreshed after commit).
STALE_SECONDS = 5.0
#: Examples kept per failed check.
EXAMPLES = 5


@dataclass(frozen=True)
class Recovery:
    """When, after the last fault ended, every job was terminal and every terminal
    webhook had arrived (None: not within the wait)."""

    last_fault_end: float
    jobs_terminal_after: float | None
    webhooks_after: float | None

    @property
    def seconds(self) -> float | None:
        if self.jobs_terminal_after is None or self.webhooks_after is None:
            return None
        return max(self.jobs_terminal_after, self.webhooks_after)


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


@dataclass(repr=False)
class Report:
    """Every count a chaos run is judged by; :meth:`problems` names the failed checks."""

    deadline_seconds: float
    recovery: Recovery
    windows: list[Window]
    started_at: float
    submissions: int = 0
    accepted: int = 0
    refused: Counter[int] = field(default_factory=Counter)
    given_up: int = 0
    retried_submissions: int = 0
    replayed_answers: int = 0
    jobs: int = 0
    states: Counter[str] = field(default_factory=Counter)
    not_terminal: list[str] = field(default_factory=list)
    terminal_without_webhook: list[str] = field(default_factory=list)
    webhook_posts: int = 0
    duplicate_posts: int = 0
    jobs_with_several_webhook_ids: list[str] = field(default_factory=list)
    negative_balances: list[str] = field(default_factory=list)
    unbalanced_accounts: list[str] = field(default_factory=list)
    debit_not_once: list[str] = field(default_factory=list)
    refunded_twice: list[str] = field(default_factory=list)
    failed_not_refunded: list[str] = field(default_factory=list)
    completed_but_refunded: list[str] = field(default_factory=list)
    server_errors: list[Answer] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    get_mismatches: list[str] = field(default_factory=list)
    #: GETs during the run that showed a job unfinished long after it had ended.
    stale_gets: list[str] = field(default_factory=list)
    stale_jobs: int = 0
    longest_stale_seconds: float = 0.0
    keys_with_several_jobs: list[str] = field(default_factory=list)
    extra_jobs: int = 0
    extra_credits: int = 0
    jobs_without_answer: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"<Report: {self.jobs} jobs, {len(self.problems())} failed checks>"

    def problems(self) -> list[str]:
        found = []
        r = self.recovery
        if r.seconds is None or r.seconds > self.deadline_seconds:
            found.append(
                f"recovery: not within {self.deadline_seconds:g}s of the last fault "
                f"(jobs terminal after {_secs(r.jobs_terminal_after)}, "
                f"terminal webhooks after {_secs(r.webhooks_after)})"
            )
        checks: list[tuple[str, list[str]]] = [
            ("jobs not terminal", self.not_terminal),
            ("terminal jobs without a terminal webhook", self.terminal_without_webhook),
            ("jobs with more than one terminal webhook-id", self.jobs_with_several_webhook_ids),
            ("negative balances", self.negative_balances),
            ("accounts whose balance is not the sum of their ledger", self.unbalanced_accounts),
            ("jobs without exactly one debit", self.debit_not_once),
            ("jobs refunded more than once", self.refunded_twice),
            ("failed or canceled jobs not refunded", self.failed_not_refunded),
            ("completed jobs refunded", self.completed_but_refunded),
            ("GETs that disagree with the database", self.get_mismatches),
            (f"GETs showing a job unfinished {STALE_SECONDS:g}s after it ended", self.stale_gets),
            ("idempotency keys with more than one job", self.keys_with_several_jobs),
        ]
        for what, items in checks:
            if items:
                found.append(f"{what}: {len(items)} (e.g. {', '.join(items[:EXAMPLES])})")
        if self.duplicate_posts:
            found.append(f"webhook POSTs repeating a webhook-id: {self.duplicate_posts}")
        if self.server_errors:
            found.append(f"5xx answered to valid requests: {len(self.server_errors)} "
                         f"({self.describe_server_errors()})")  # fmt: skip
        if self.given_up:
            found.append(f"submissions that never got an answer: {self.given_up}")
        return found

    def describe_server_errors(self) -> str:
        groups = Counter((a.kind, a.status, self._fault_at(a.at)) for a in self.server_errors)
        return "; ".join(
            f"{n}x {status} to {kind} {where}" for (kind, status, where), n in groups.most_common()
        )

    def _fault_at(self, at: float) -> str:
        """The fault most likely behind an answer at ``at``: the latest one begun by then
        and not over for more than the aftermath."""
        near = [w for w in self.windows if w.start <= at <= w.end + FAULT_AFTERMATH_SECONDS]
        where = f"at t={at - self.started_at:.1f}s"
        if not near:
            return f"{where}, no fault near"
        return f"{where}, {max(near, key=lambda w: w.start).kind}"

    def lines(self) -> list[tuple[str, str]]:
        """(measure, value) rows for printing."""
        r = self.recovery
        return [
            ("submissions", f"{self.submissions} ({self.retried_submissions} retried, "
                            f"{self.replayed_answers} answers marked Idempotent-Replayed)"),
            ("accepted / refused / no answer", f"{self.accepted} / {sum(self.refused.values())} "
                                               f"{dict(self.refused)} / {self.given_up}"),
            ("jobs in the database", f"{self.jobs} {dict(sorted(self.states.items()))}"),
            ("jobs per idempotency key > 1", f"{len(self.keys_with_several_jobs)} keys, "
                                             f"{self.extra_jobs} extra jobs, "
                                             f"{self.extra_credits} credits charged twice"),
            ("jobs whose key never got a 2xx", str(len(self.jobs_without_answer))),
            ("jobs terminal after last fault", _secs(r.jobs_terminal_after)),
            ("terminal webhooks in after last fault", _secs(r.webhooks_after)),
            ("recovery (both)", _secs(r.seconds)),
            ("jobs not terminal at the deadline", str(len(self.not_terminal))),
            ("terminal jobs without webhook", str(len(self.terminal_without_webhook))),
            ("webhook POSTs received", str(self.webhook_posts)),
            ("duplicate POSTs (same webhook-id)", str(self.duplicate_posts)),
            ("jobs with >1 terminal webhook-id", str(len(self.jobs_with_several_webhook_ids))),
            ("negative balances", str(len(self.negative_balances))),
            ("accounts: balance != ledger sum", str(len(self.unbalanced_accounts))),
            ("jobs: debits != 1 / refunds > 1", f"{len(self.debit_not_once)} / "
                                                f"{len(self.refunded_twice)}"),
            ("failed unrefunded / completed refunded", f"{len(self.failed_not_refunded)} / "
                                                       f"{len(self.completed_but_refunded)}"),
            ("answers (kind status: count)", ", ".join(
                f"{k}: {n}" for k, n in sorted(self.answers.items()))),
            ("5xx to valid requests", f"{len(self.server_errors)}"
                                      + (f" ({self.describe_server_errors()})"
                                         if self.server_errors else "")),
            ("GETs disagreeing with the database", str(len(self.get_mismatches))),
            (f"GETs stale > {STALE_SECONDS:g}s during the run",
             f"{len(self.stale_gets)} on {self.stale_jobs} jobs, up to "
             f"{self.longest_stale_seconds:.1f}s behind the database"),
        ]  # fmt: skip


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


def _secs(value: float | None) -> str:
    return "never (within the wait)" if value is None else f"{value:.1f}s"
