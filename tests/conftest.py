"""Shared fixtures: real Redis, real SQLite and PostgreSQL, a real simulator on 127.0.0.1.

Redis: ``GENHOOK_TEST_REDIS_URL`` if set (CI uses the machine's), else the bundled
redis-server started for the session. PostgreSQL: every ``database_url`` test runs on it
too when ``GENHOOK_TEST_DATABASE_URL`` is set; with ``CI`` set and no reachable PostgreSQL
the run fails instead of skipping.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from backend import bundled_redis

_TEST_REDIS_URL = os.environ.get("GENHOOK_TEST_REDIS_URL", "")
_BUNDLED: subprocess.Popen[bytes] | None = None
_BUNDLED_DIR = Path(__file__).resolve().parent.parent / "var" / "test-redis"


# The Dramatiq broker is bound when ``backend.actors`` is imported (below), so the test
# Redis must be known before that: this runs when pytest loads this file.
if not _TEST_REDIS_URL:
    shutil.rmtree(_BUNDLED_DIR, ignore_errors=True)
    _BUNDLED, _TEST_REDIS_URL = bundled_redis.start(_BUNDLED_DIR)
os.environ["GENHOOK_REDIS_URL"] = _TEST_REDIS_URL
os.environ.pop("GENHOOK_DATABASE_URL", None)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _BUNDLED is not None:
        _BUNDLED.terminate()
        _BUNDLED.wait(10)


import dramatiq  # noqa: E402
from falcon import testing  # noqa: E402

import backend.actors  # noqa: E402,F401  (declares the actors on the test broker)
from backend.accounts import NewAccount, create_account  # noqa: E402
from backend.api.app import create_app  # noqa: E402
from backend.context import Context, build_context, use_context  # noqa: E402
from backend.settings import Settings  # noqa: E402
from backend.simulator.app import create_app as create_simulator  # noqa: E402
from backend.store.migrate import upgrade  # noqa: E402
from backend.store.tables import metadata  # noqa: E402
from tests.support.faults import CONTROL_TOKEN  # noqa: E402
from tests.support.receiver import WebhookReceiver  # noqa: E402
from tests.support.wsgi_server import serve_wsgi  # noqa: E402

#: Session fixtures kept in their own modules: ``s3_server`` (moto's S3 on 127.0.0.1).
pytest_plugins = ["tests.support.s3_server"]

PG_URL = os.environ.get("GENHOOK_TEST_DATABASE_URL", "")
#: The operator key that seals signing secrets in every test (``GENHOOK_SECRET_KEY``).
TEST_SECRET_KEY = "3q3q3q3q3q3q3q3q3q3q3q3q3q3q3q3q3q3q3q3q3q0="
# Processes the tests start (gunicorn, workers, the CLI) get it too, as an operator's would.
os.environ["GENHOOK_SECRET_KEY"] = TEST_SECRET_KEY
DATABASES = ["sqlite"] + (["postgresql"] if PG_URL else [])
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _TEST_REDIS_URL


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "genhook.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_ready() -> str:
    """Reset the test PostgreSQL database and migrate it once per session."""
    from backend.store.engine import create_engine

    engine = create_engine(PG_URL)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"GENHOOK_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {exc}")
    upgrade(engine)
    engine.dispose()
    return PG_URL


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "genhook.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_ready")
    from backend.store.engine import create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        names = ", ".join(t.name for t in metadata.sorted_tables)
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def simulator() -> Iterator[str]:
    """The render-farm simulator on a real port; renders take 0.2 s."""
    with serve_wsgi(create_simulator(render_seconds=0.2, control_token=CONTROL_TOKEN)) as url:
        yield url


#: Rate limits and quotas no scenario of the suite comes near (counted in Redis all the same).
GENEROUS_LIMITS: dict[str, object] = {
    "rate_limit_reads": "100000/second",
    "rate_limit_writes": "100000/second",
    "max_jobs_in_flight": 100_000,
    "quota_deliveries": "1000000/hour",
    "quota_redeliveries": "1000000/hour",
    "quota_recovers": "1000000/hour",
    "signup_limit_per_address": "1000000/hour",
    "signup_limit_per_domain": "1000000/hour",
}


def make_settings(
    database_url: str, redis_url: str, simulator_url: str, **extra: object
) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "simulator_url": simulator_url,
        "simulator_fallback": True,
        "poll_interval_seconds": 0.05,
        "poll_max_interval_seconds": 0.2,
        "webhook_allowed_networks": LOOPBACK,
        "webhook_timeout_seconds": 2.0,
        "webhook_retry_schedule": "0s,0.1s,0.2s",
        # Tests that lose messages on purpose recover them themselves (test_recovery.py).
        "recovery_on_worker_start": False,
        # Limits on but far out of reach: the suite signs up many accounts and submits many
        # jobs from 127.0.0.1. tests/test_rate_limits.py sets tight ones explicitly.
        **GENEROUS_LIMITS,
        # Accounts at once, as under `genhook up`; tests/test_signup.py covers the others.
        "signup_mode": "open",
        "secret_key": TEST_SECRET_KEY,
        **extra,
    }
    return Settings.model_validate(values)


@pytest.fixture
def settings(database_url: str, redis_url: str, simulator: str) -> Settings:
    return make_settings(database_url, redis_url, simulator)


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    """A process context on fresh data, installed as the one the actors use."""
    redis.Redis.from_url(settings.redis_url).flushdb()
    context = build_context(settings, broker=dramatiq.get_broker())
    use_context(context)
    yield context
    use_context(None)
    try:
        assert_books_balance(context)
    finally:
        context.close()


def assert_books_balance(ctx: Context) -> None:
    """After every scenario: no balance is negative, and each equals the sum of its
    account's ledger (the signup grant, debits, refunds, price drops, operator grants); and
    each account's count of jobs in flight equals its unfinished jobs."""
    with ctx.store.begin() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT a.email, a.credits, COALESCE(SUM(l.delta), 0) AS ledger "
                "FROM accounts a LEFT JOIN credit_ledger l ON l.account_id = a.id "
                "GROUP BY a.id, a.email, a.credits"
            )
        ).all()
        counted = conn.execute(
            sa.text(
                "SELECT a.email, a.jobs_in_flight, COUNT(j.id) AS unfinished "
                "FROM accounts a LEFT JOIN jobs j ON j.account_id = a.id "
                "AND j.status IN ('pending', 'processing') "
                "GROUP BY a.id, a.email, a.jobs_in_flight"
            )
        ).all()
    unbalanced = [(r.email, r.credits, r.ledger) for r in rows if r.credits != r.ledger]
    assert not unbalanced, f"balance != ledger sum (email, balance, ledger): {unbalanced}"
    assert all(r.credits >= 0 for r in rows)
    miscounted = [(r.email, r.jobs_in_flight, r.unfinished) for r in counted]
    miscounted = [row for row in miscounted if row[1] != row[2]]
    assert not miscounted, f"jobs_in_flight != unfinished jobs (email, counter, jobs): {miscounted}"


@pytest.fixture
def worker(ctx: Context) -> Iterator[dramatiq.Worker]:
    """A real Dramatiq worker (threads in this process) consuming the test Redis; its
    actors use the context the test installed, and it stops before that context goes."""
    broker = dramatiq.get_broker()
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=50)
    worker.start()
    yield worker
    worker.stop(timeout=10_000)
    # Worker.stop leaves its middleware on the broker; the next worker would add another.
    broker.middleware[:] = [m for m in broker.middleware if type(m).__name__ != "_WorkerMiddleware"]


@pytest.fixture
def api(ctx: Context) -> testing.TestClient:
    return testing.TestClient(create_app(ctx))


@pytest.fixture
def account(ctx: Context) -> NewAccount:
    return create_account(ctx, "builder@example.com")


@pytest.fixture
def auth(account: NewAccount) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.api_key}"}


@pytest.fixture
def receiver() -> Iterator[tuple[WebhookReceiver, str]]:
    app = WebhookReceiver()
    with serve_wsgi(app) as url:
        yield app, url


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)
