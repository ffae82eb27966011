"""The cap on an account's unfinished generations, checked where a job is inserted.

The check runs in the submission's own transaction, after locking the account's row, so two
submissions at once are counted one after the other and can never both take the last slot;
refused, the transaction rolls back: nothing inserted, nothing charged.
"""

from __future__ import annotations

import sqlalchemy as sa

from backend.errors import NotFound, TooManyJobsInFlight
from backend.settings import Settings
from backend.store import accounts as accounts_store
from backend.store import jobs as jobs_store

#: What a refused client is told to wait: about the shortest render.
RETRY_AFTER_SECONDS = 10


def require_room_in_flight(
    conn: sa.Connection, settings: Settings, account_id: str, *, final: bool
) -> None:
    """Raise ``TooManyJobsInFlight`` if the account already has as many unfinished jobs as
    its cap (the operator's per-account value, else the setting).

    ``final``: in the insert's transaction, right after the job's own insert. The account's
    row is locked first, so concurrent submissions are counted one after the other, and the
    new job counts among the unfinished ones. Locking this late keeps the lock (which the
    debit takes anyway) for the end of the transaction only. Without ``final``: an early,
    unlocked check that spares a submission that would be refused its image fetches."""
    account = accounts_store.get_account(conn, account_id, for_update=final)
    if account is None:
        raise NotFound("account not found")
    cap = account.max_jobs_in_flight
    if cap is None:
        cap = settings.max_jobs_in_flight
    allowed = cap + 1 if final else cap  # the job being inserted counts itself when final
    if jobs_store.count_in_flight(conn, account_id, up_to=allowed) >= allowed:
        raise TooManyJobsInFlight(
            f"this account may have at most {cap} generations in flight (pending or "
            f"processing) and has that many; submit again when one has finished",
            retry_after_seconds=RETRY_AFTER_SECONDS,
        )
