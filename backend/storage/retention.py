"""Retention: delete kept outputs older than ``GENHOOK_OUTPUT_RETENTION_DAYS``.

Run by the scheduler's sweeps, one batch a call. The file goes first and the row is marked
after, so a crash in between only means deleting a missing file next time; a delete the
store refuses is logged and the output stays due, to be tried again at the next sweep.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from backend.context import Context
from backend.errors import StorageUnavailable
from backend.storage import store_for
from backend.store.outputs import mark_deleted, stored_before

log = logging.getLogger(__name__)

#: Outputs deleted per call at most; the next sweep carries on.
BATCH_SIZE = 200


def delete_expired_outputs(ctx: Context, now: datetime, *, limit: int = BATCH_SIZE) -> int:
    """Delete up to ``limit`` outputs stored before the retention period; how many went."""
    days = ctx.settings.output_retention_days
    if days == 0:
        return 0
    with ctx.store.begin() as conn:
        due = stored_before(conn, now - timedelta(days=days), limit)
    if not due:
        return 0
    store = store_for(ctx.settings)
    deleted = 0
    for output in due:
        try:
            store.delete(output.key)
        except StorageUnavailable as exc:
            log.warning("retention could not delete the output of %s: %s", output.job_id, exc)
            continue
        with ctx.store.begin() as conn:
            mark_deleted(conn, output.job_id, now)
        deleted += 1
    if deleted:
        log.info("retention deleted %d outputs stored before %d days ago", deleted, days)
    return deleted
