"""The cap on an account's unfinished generations, checked where a job is inserted.

The account row counts its unfinished jobs (``accounts.jobs_in_flight``, kept by
``store/jobs.py`` in the transactions that insert and finish jobs), so the check reads one
row however many jobs the account has running. The final check runs in the submission's own
transaction, after the job's insert has counted itself and so locked the account's row: two
submissions at once are counted one after the other and can never both take the last slot;
refused, the transaction rolls back: nothing inserted, nothing charged, nothing counted.
"""

from __future__ import annotations

import sqlalchemy as sa

from backend.errors import NotFound, TooManyJobsInFlight
from backend.settings import Settings
from backend.store import accounts as accounts_store

#: What a refused client is told to wait: about the shortest render.
RETRY_AFTER_SECONDS = 10


def require_room_in_flight(
    conn: sa.Connection, settings: Settings, account_id: str, *, final: bool
) -> None:
    """Raise ``TooManyJobsInFlight`` if the account already has as many unfinished jobs as
    its cap (the operator's per-account value, else the setting).

    ``final``: in the insert's transaction, right after the job's own insert, which counted
    the new job and holds the account's row until the commit. Without ``final``: an early
    check that spares a submission that would be refused its image fetches."""
    # When final, this transaction's own count of the new job (an UPDATE of the account's
    # row) already holds the row until the commit: no other lock is needed.
    account = accounts_store.in_flight(conn, account_id)
    if account is None:
        raise NotFound("account not found")
    cap = account.max_jobs_in_flight
    if cap is None:
        cap = settings.max_jobs_in_flight
    others = account.jobs_in_flight - 1 if final else account.jobs_in_flight
    if others >= cap:
        raise TooManyJobsInFlight(
            f"this account may have at most {cap} generations in flight (pending or "
            f"processing) and has that many; submit again when one has finished",
            retry_after_seconds=RETRY_AFTER_SECONDS,
        )
