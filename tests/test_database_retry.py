"""A request whose database connection is cut before anything of it was committed is run
again on a fresh connection; one that may have committed answers a 503 instead."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from falcon import testing

from backend.accounts import NewAccount
from backend.context import Context
from backend.store.tables import jobs
from tests.support.api import GENERATION, GENERATIONS
from tests.support.ledger import balance


@contextmanager
def connection_cut_once(ctx: Context, statement_prefix: str) -> Iterator[list[str]]:
    """Cut the connection the first time a statement starting with ``statement_prefix`` runs:
    on PostgreSQL the server terminates that backend for real; SQLite has no server, so the
    driver's error is raised in its place."""
    engine = ctx.store.engine
    cuts: list[str] = []

    def cut(conn: sa.Connection, cursor: Any, statement: str, *_: Any) -> None:
        if cuts or not statement.lstrip().upper().startswith(statement_prefix):
            return
        cuts.append(statement)
        if engine.dialect.name == "postgresql":
            pid = conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
            with sa.create_engine(engine.url).connect() as admin:
                admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            return  # the statement now meets a dead connection
        raise sa.exc.OperationalError(statement, None, ConnectionError("connection cut"))

    sa.event.listen(engine, "before_cursor_execute", cut)
    try:
        yield cuts
    finally:
        sa.event.remove(engine, "before_cursor_execute", cut)


def job_count(ctx: Context) -> int:
    with ctx.store.begin() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one())


def test_a_submission_cut_before_its_commit_is_run_again_and_charged_once(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount
) -> None:
    before = balance(ctx, account)

    with connection_cut_once(ctx, "INSERT INTO JOBS") as cuts:
        result = api.simulate_post(GENERATIONS, json=GENERATION, headers=auth)

    assert cuts, "the connection was cut"
    assert result.status_code == 202, result.text
    assert job_count(ctx) == 1
    assert balance(ctx, account) == before - result.json["credits"]


def test_a_read_cut_midway_is_answered_from_a_fresh_connection(
    api: testing.TestClient, auth: dict[str, str], ctx: Context
) -> None:
    with connection_cut_once(ctx, "SELECT JOBS") as cuts:
        result = api.simulate_get(GENERATIONS, headers=auth)

    assert cuts
    assert result.status_code == 200, result.text


def test_a_request_cut_while_committing_is_a_503_not_run_twice(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount
) -> None:
    # Given the commit of the job's transaction fails: it may or may not have happened
    engine = ctx.store.engine
    inserted: list[str] = []
    failed: list[str] = []

    def note_insert(conn: sa.Connection, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO JOBS"):
            inserted.append(statement)

    def fail_commit(conn: sa.Connection) -> None:
        if inserted and not failed:
            failed.append("commit")
            conn.invalidate()  # as a real cut does: the pool throws the connection away
            raise sa.exc.OperationalError("COMMIT", None, ConnectionError("connection cut"))

    sa.event.listen(engine, "before_cursor_execute", note_insert)
    sa.event.listen(engine, "commit", fail_commit)
    try:
        result = api.simulate_post(GENERATIONS, json=GENERATION, headers=auth)
    finally:
        sa.event.remove(engine, "before_cursor_execute", note_insert)
        sa.event.remove(engine, "commit", fail_commit)

    # Then the client is told to retry (an Idempotency-Key makes that safe), and the
    # request was not run a second time behind its back
    assert failed
    assert result.status_code == 503, result.text
    assert len(inserted) == 1
    assert job_count(ctx) == 0
    assert balance(ctx, account) == account.account.credits


def test_an_api_key_lookup_cut_midway_is_run_again(
    api: testing.TestClient, auth: dict[str, str], ctx: Context
) -> None:
    # The lookup runs in the authentication middleware, before any responder's own retry
    with connection_cut_once(ctx, "SELECT API_KEYS") as cuts:
        result = api.simulate_get(GENERATIONS, headers=auth)

    assert cuts, "the connection was cut during the key lookup"
    assert result.status_code == 200, result.text
