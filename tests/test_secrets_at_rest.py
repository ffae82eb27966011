"""Secrets at rest (issue 11, finding 7): what a local user or a copy of the database yields.

- ``genhook up``'s var dir and every file in it are its user's alone from their creation.
- The bundled Redis wants a password (never shown in full) and has no ``CONFIG`` at all.
- Signing secrets are stored sealed under the operator's key, on SQLite and PostgreSQL,
  still sign verifiable webhooks, survive a key rotation, and a wrong or missing key stops
  a process at start with a message that says which key.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import sqlalchemy as sa
from falcon import testing
from pydantic import ValidationError
from standardwebhooks import Webhook

from backend import security
from backend.accounts import NewAccount
from backend.context import Context
from backend.secret_box import SecretBox
from backend.secrets_at_rest import census
from backend.settings import Settings
from backend.store import accounts as accounts_store
from backend.store import endpoints as endpoints_store
from backend.store.secrets import flush_sqlite_log
from backend.store.tables import accounts, metadata, webhook_endpoints
from backend.store.types import utcnow
from backend.up import prepare_var_dir
from tests.conftest import TEST_SECRET_KEY
from tests.support.api import submit
from tests.support.receiver import WebhookReceiver
from tests.support.stack import Stack, processes, start_stack, stop_stack

GENHOOK = str(Path(sys.executable).parent / "genhook")
ENDPOINTS = "/v1/webhook-endpoints"
#: A loopback URL the test settings allow, where nothing listens.
QUIET_URL = "http://127.0.0.1:9/hooks"
#: The key every test context seals with, and a second one for rotations and wrong keys.
KEY_A = TEST_SECRET_KEY
KEY_B = "u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7u7s="
KEY_A_ID = SecretBox.from_setting(KEY_A).current_key_id
KEY_B_ID = SecretBox.from_setting(KEY_B).current_key_id


# --- helpers -------------------------------------------------------------------------------


def stack_env(var_dir: Path) -> dict[str, str]:
    """The settings ``genhook up`` wrote to ``var/stack.env`` for other shells."""
    values = {}
    for line in (var_dir / "stack.env").read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = shlex.split(value)[0]
    return values


def open_to_others(root: Path) -> list[str]:
    """Every path under ``root`` (itself included) that its group or others may use."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {oct(mode)}")
    return found


def everything_stored(ctx: Context) -> str:
    """Every row of every table, as text."""
    with ctx.store.begin() as conn:
        return "\n".join(
            repr(tuple(row))
            for table in metadata.sorted_tables
            for row in conn.execute(table.select())
        )


def sqlite_files(database_url: str) -> list[Path]:
    """The SQLite database and whatever files SQLite keeps beside it (-wal, -shm, -journal)."""
    path = Path(sa.make_url(database_url).database or "")
    return sorted(path.parent.glob(path.name + "*"))


def genhook(*args: str, timeout: float = 60, **settings: str) -> tuple[int | None, str, str]:
    """``genhook <args>`` as an operator runs it, with only the given ``GENHOOK_*`` settings;
    ``(exit code, stdout, stderr)``, the code ``None`` if it was still running at ``timeout``
    (it is then killed, with its process group)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENHOOK_")}
    env |= {f"GENHOOK_{name.upper()}": value for name, value in settings.items()}
    process = subprocess.Popen(
        [GENHOOK, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
        return process.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        return None, out, err


def raw_redis(port: int, command: bytes) -> bytes:
    """What Redis answers a client that sends ``command`` and nothing else (no AUTH)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command + b"\r\n")
        return sock.recv(1024)


# --- genhook up: its files and its Redis ----------------------------------------------------


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    """A real ``genhook up`` in a fresh directory that has run a job to completion (so its
    video is kept under var/outputs) and whose Redis has written a snapshot."""
    work = tmp_path_factory.mktemp("up")
    stack = start_stack(work, {})
    try:
        stack.completed(stack.submit()["id"])
        redis.Redis.from_url(stack_env(work / "var")["GENHOOK_REDIS_URL"]).save()
        yield stack, work / "var"
    finally:
        stop_stack(stack)


def test_everything_genhook_up_creates_is_its_users_alone(up: tuple[Stack, Path]) -> None:
    # Given a running stack
    _, var = up

    # Then its var dir and everything in it, from the database to Redis's snapshot, are
    # closed to the group and to other users
    created = {p.relative_to(var).as_posix() for p in var.rglob("*")}
    assert {
        "genhook.db",
        "genhook.db-wal",
        "stack.env",
        "demo-account.json",
        "secret-key",
        "redis/redis.conf",
        "redis/redis.log",
        "redis/appendonly.aof",
        "redis/dump.rdb",
        "outputs",
    } <= created
    assert any(name.startswith("outputs/") for name in created)
    assert open_to_others(var) == []


def test_the_redis_password_is_never_shown_in_full(up: tuple[Stack, Path]) -> None:
    # Given the stack's Redis password (in var/stack.env, for the operator's other shells)
    stack, var = up
    password = urlsplit(stack_env(var)["GENHOOK_REDIS_URL"]).password
    assert password

    # Then the banner names Redis without it, and no process carries it on its command line
    # (which every local user can read)
    assert "Redis           redis://:…@127.0.0.1:" in stack.output()
    assert password not in stack.output()
    assert [cmd for *_, cmd in processes().values() if password in cmd] == []


def test_the_bundled_redis_refuses_clients_without_its_password_and_has_no_config(
    up: tuple[Stack, Path],
) -> None:
    # Given the bundled Redis of a running stack
    _, var = up
    url = stack_env(var)["GENHOOK_REDIS_URL"]

    # When a local user connects without the password, nothing is answered but NOAUTH
    port = urlsplit(url).port
    assert port is not None
    assert raw_redis(port, b"PING").startswith(b"-NOAUTH")
    assert raw_redis(port, b"SET genhook:owned yes").startswith(b"-NOAUTH")

    # And even with it, CONFIG (the way to write Redis's files elsewhere) does not exist
    client = redis.Redis.from_url(url)
    assert client.ping()
    with pytest.raises(redis.ResponseError, match="unknown command"):
        client.config_set("dir", "/tmp")


def test_a_var_dir_an_older_genhook_left_readable_is_tightened_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a var dir as an older genhook left it: 0755, with 0644 files
    var = tmp_path / "var"
    (var / "redis").mkdir(parents=True)
    for path in (var / "genhook.db", var / "redis" / "appendonly.aof"):
        path.write_text("old")
    for path in (var, var / "redis"):
        path.chmod(0o755)
    for path in (var / "genhook.db", var / "redis" / "appendonly.aof"):
        path.chmod(0o644)

    # When genhook up prepares it
    prepare_var_dir(var)

    # Then nothing in it is open to others any more, and the operator is told
    assert open_to_others(var) == []
    assert "was readable by other local users" in capsys.readouterr().out


# --- signing secrets in the database ---------------------------------------------------------


def test_no_signing_secret_is_stored_in_plain_text(
    ctx: Context, api: testing.TestClient, database_url: str
) -> None:
    # Given a signup (its answer remembered under an Idempotency-Key), an endpoint, and both
    # secrets rotated
    signup = api.simulate_post(
        "/v1/signup", json={"email": "new@example.com"}, headers={"Idempotency-Key": "k-1"}
    )
    assert signup.status_code == 201, signup.text
    auth = {"Authorization": f"Bearer {signup.json['api_key']}"}
    endpoint = api.simulate_post(ENDPOINTS, json={"url": QUIET_URL}, headers=auth).json
    shown = [
        signup.json["signing_secret"],
        endpoint["secret"],
        api.simulate_post("/v1/account/rotate-signing-secret", headers=auth).json["secret"],
        api.simulate_post(f"{ENDPOINTS}/{endpoint['id']}/rotate-secret", headers=auth).json[
            "secret"
        ],
    ]
    assert all(secret.startswith("whsec_") for secret in shown)

    # Then no row of any table holds one of them, whole or without its prefix
    stored = everything_stored(ctx)
    assert "whsec_" not in stored
    assert [s for s in shown if s.removeprefix("whsec_") in stored] == []

    # And on SQLite, no byte of its files does either
    if database_url.startswith("sqlite"):
        for path in sqlite_files(database_url):
            data = path.read_bytes()
            assert b"whsec_" not in data, path
            assert [s for s in shown if s.removeprefix("whsec_").encode() in data] == [], path

    # And the owner is still shown the endpoint's current secret
    current = api.simulate_get(f"{ENDPOINTS}/{endpoint['id']}/secret", headers=auth).json
    assert current["secret"] == shown[3]


def test_secrets_an_older_genhook_stored_in_plain_text_are_sealed_by_migrate(
    ctx: Context, database_url: str
) -> None:
    # Given an account and an endpoint as an older genhook stored them: secrets in plain text
    plain = [security.new_signing_secret() for _ in range(3)]
    now = utcnow()
    with ctx.store.begin() as conn:
        conn.execute(
            accounts.insert().values(
                id="acct_old",
                email="old@example.com",
                credits=0,
                signing_secret=plain[0],
                previous_signing_secret=plain[1],
                previous_signing_secret_expires_at=now + timedelta(hours=1),
                created_at=now,
            )
        )
        conn.execute(
            webhook_endpoints.insert().values(
                id="we_old",
                account_id="acct_old",
                url=QUIET_URL,
                description="",
                events=["video.generation.completed"],
                enabled=True,
                secret=plain[2],
                created_at=now,
                updated_at=now,
            )
        )
    flush_sqlite_log(ctx.store)  # long written: in the database file itself, not its log

    # When the operator upgrades with genhook migrate and a key
    code, out, err = genhook("migrate", database_url=database_url, secret_key=KEY_A)
    assert code == 0, err
    assert "sealed 3 plain-text signing secrets" in out

    # Then none is left in plain text, in the rows or (SQLite) anywhere in its files
    assert census(ctx.store).by_key == {KEY_A_ID: 3}
    assert "whsec_" not in everything_stored(ctx)
    if database_url.startswith("sqlite"):
        for path in sqlite_files(database_url):
            data = path.read_bytes()
            assert [s for s in plain if s.removeprefix("whsec_").encode() in data] == [], path

    # And each opens to the secret it was, so receivers need not change anything
    with ctx.store.begin() as conn:
        account = accounts_store.get_account(conn, "acct_old")
        endpoint = endpoints_store.get_endpoint(conn, "we_old")
    assert account is not None and endpoint is not None
    assert ctx.secret_box.open(account.signing_secret) == plain[0]
    assert ctx.secret_box.open_optional(account.previous_signing_secret) == plain[1]
    assert ctx.secret_box.open(endpoint.secret) == plain[2]


@pytest.mark.usefixtures("worker")
def test_rotating_the_operator_key_reseals_every_secret_and_webhooks_still_verify(
    ctx: Context,
    api: testing.TestClient,
    account: NewAccount,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
    database_url: str,
) -> None:
    # Given an account and an endpoint whose secrets are sealed with key A
    app, url = receiver
    endpoint = api.simulate_post(
        ENDPOINTS,
        json={"url": f"{url}/endpoint", "events": ["video.generation.completed"]},
        headers=auth,
    ).json
    assert census(ctx.store).by_key == {KEY_A_ID: 2}

    # When the operator puts a new key B first, rotates, and then removes key A
    code, out, err = genhook(
        "secrets", "rotate", database_url=database_url, secret_key=f"{KEY_B},{KEY_A}"
    )
    assert code == 0, err
    assert f"sealed 2 signing secrets again with key {KEY_B_ID}" in out
    code, out, err = genhook("secrets", "status", database_url=database_url, secret_key=KEY_B)
    assert code == 0, out + err
    ctx.secret_box = SecretBox.from_setting(KEY_B)  # every process restarted with B alone

    # Then every stored secret is sealed with B
    assert census(ctx.store).by_key == {KEY_B_ID: 2}

    # And a job's webhooks, to its own URL and to the endpoint, verify with the secrets the
    # account was given before any of this
    submit(api, auth, webhook_url=f"{url}/job")
    hooks = {hook.path: hook for hook in app.wait_for(2)}
    Webhook(account.signing_secret).verify(hooks["/job"].body, hooks["/job"].headers)
    Webhook(endpoint["secret"]).verify(hooks["/endpoint"].body, hooks["/endpoint"].headers)


@pytest.mark.parametrize("command", ["api", "worker", "scheduler"])
def test_a_process_given_the_wrong_key_refuses_to_start_and_names_the_key_it_needs(
    ctx: Context, account: NewAccount, database_url: str, command: str
) -> None:
    # Given an account whose secret is sealed with key A
    # When a process starts with key B alone
    code, _, err = genhook(
        command,
        timeout=30,
        database_url=database_url,
        redis_url=ctx.settings.redis_url,
        secret_key=KEY_B,
    )

    # Then it refuses, saying which key sealed what and which it holds
    assert code == 2, err
    assert (
        f"does not hold the key that sealed stored signing secrets (1 with key {KEY_A_ID})" in err
    )
    assert f"it holds {KEY_B_ID}" in err


def test_a_process_without_a_key_refuses_to_start(
    ctx: Context, account: NewAccount, database_url: str
) -> None:
    # Given an account whose secret is sealed
    # When the worker starts with no GENHOOK_SECRET_KEY at all
    code, _, err = genhook(
        "worker", timeout=30, database_url=database_url, redis_url=ctx.settings.redis_url
    )

    # Then it refuses, and says how to fix it
    assert code == 2, err
    assert "GENHOOK_SECRET_KEY is not set" in err and "(the database holds 1)" in err


def test_a_malformed_key_is_refused_without_being_repeated() -> None:
    # Given an operator key that is not 32 bytes of URL-safe base64
    malformed = "correct-horse-battery-staple"

    # When the settings are read, they are refused, saying what a key must be, but the
    # message (which ends up in logs) never shows the value
    with pytest.raises(ValidationError) as refused:
        Settings.model_validate({"secret_key": f"{KEY_A},{malformed}"})
    message = str(refused.value)
    assert "GENHOOK_SECRET_KEY: key #2 is not 32 bytes of URL-safe base64" in message
    assert malformed not in message and KEY_A not in message
