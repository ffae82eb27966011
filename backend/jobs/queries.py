"""Reading jobs for clients: the status cache first, the database as the fallback."""

from __future__ import annotations

from backend.context import Context
from backend.schemas.generations import Generation, GenerationList, GenerationListQuery
from backend.store import jobs as jobs_store


def find_generation(ctx: Context, account_id: str, job_id: str) -> Generation | None:
    """One job of ``account_id``; another account's job is indistinguishable from none."""
    now = ctx.now()
    cached = ctx.cache.get(account_id, job_id, now)
    if cached is not None:
        return cached
    with ctx.store.begin() as conn:
        job = jobs_store.get_account_job(conn, account_id, job_id)
    if job is None:
        return None
    ctx.cache.put(job, now)
    return ctx.cache.generation(job, now)


def list_generations(ctx: Context, account_id: str, query: GenerationListQuery) -> GenerationList:
    """A page of jobs; raises ``ValueError`` for a cursor this API did not hand out."""
    before = jobs_store.decode_cursor(query.cursor) if query.cursor else None
    with ctx.store.begin() as conn:
        rows = jobs_store.list_jobs(
            conn, account_id, limit=query.limit + 1, status=query.status, before=before
        )
    page, has_more = rows[: query.limit], len(rows) > query.limit
    now = ctx.now()
    return GenerationList(
        data=[ctx.cache.generation(job, now) for job in page],
        has_more=has_more,
        next_cursor=jobs_store.encode_cursor(page[-1]) if has_more else None,
    )
