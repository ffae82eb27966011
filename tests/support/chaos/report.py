"""The counts a chaos run is judged by (:class:`Report`), the failed checks in words and
the rows it prints; :class:`Recovery` is how long genhook took to be whole again."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tests.support.chaos.load import Answer
from tests.support.chaos.plan import Window

#: A 5xx this long after a fault ended is still put down to it in the report.
FAULT_AFTERMATH_SECONDS = 10.0
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


def _secs(value: float | None) -> str:
    return "never (within the wait)" if value is None else f"{value:.1f}s"
