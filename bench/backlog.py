"""The backlog ``bench/deliver.py`` times: completed jobs whose webhooks wait to be delivered.

Why it exists: the delivery benchmark measures how fast the worker empties a backlog, so the
backlog is made the way production makes it (``create_generation``, then ``processing``,
then ``finish.complete``, which writes one pending delivery per job to the outbox and queues
its message) and is watched through the database, which says when every delivery is done.
"""

from __future__ import annotations

import sqlalchemy as sa

from backend.accounts import create_account
from backend.context import Context
from backend.jobs import finish
from backend.jobs.create import create_generation
from backend.jobs.states import JobStatus
from backend.schemas.generations import GenerationCreate
from backend.store import jobs as jobs_store
from backend.store.accounts import get_account
from backend.store.tables import deliveries, delivery_attempts
from backend.webhooks.sender import USER_AGENT
from backend.webhooks.signing import signature_headers

MODEL = "seedance-1-pro"


def create_finished_jobs(ctx: Context, count: int, webhook_url: str, accounts: int = 1) -> None:
    """``count`` completed jobs, each with one pending delivery whose message is queued,
    spread round-robin over ``accounts`` accounts (each has its own webhook caps)."""
    price = ctx.catalog.models[MODEL].credits["5s"]
    owners = [
        create_account(ctx, f"bench{i or ''}@example.com", credits=count * price).account
        for i in range(accounts)
    ]
    for n in range(count):
        account = owners[n % accounts]
        request = GenerationCreate(
            model=MODEL,
            prompt=f"genhook delivery bench #{n}: product reveal on white",
            webhook_url=webhook_url,
            metadata={"bench": "deliver", "n": str(n)},
        )
        job = create_generation(ctx, account.id, request)
        with ctx.store.begin() as conn:
            jobs_store.transition(
                conn,
                job.id,
                JobStatus.PROCESSING,
                provider_job_id=f"bench-{n}",
                submitted_at=ctx.now(),
            )
        finish.complete(ctx, job.id, output_url=f"https://cdn.example.com/bench/{n}.mp4")


def sample_request(ctx: Context, monitor: sa.Engine) -> tuple[bytes, dict[str, str]]:
    """The body of one real delivery and the headers genhook sends with it."""
    with monitor.connect() as conn:
        row = conn.execute(sa.select(deliveries).order_by(deliveries.c.id).limit(1)).one()
    with ctx.store.begin() as conn:
        account = get_account(conn, row.account_id)
    assert account is not None and row.payload is not None
    body = row.payload.encode()
    headers = signature_headers(
        secrets=[ctx.secret_box.open(account.signing_secret)],
        message_id=row.id,
        event=row.event,
        timestamp=ctx.now(),
        body=body,
    )
    return body, {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}


def delivery_counts(monitor: sa.Engine) -> dict[str, int]:
    """Deliveries per status (a plain read: on SQLite it takes no write lock)."""
    query = sa.select(deliveries.c.status, sa.func.count()).group_by(deliveries.c.status)
    with monitor.connect() as conn:
        return {status: n for status, n in conn.execute(query)}


def attempt_count(monitor: sa.Engine) -> int:
    with monitor.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(delivery_attempts)).scalar_one()
