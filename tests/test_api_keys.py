"""Credentials can be revoked (issue 11, finding 9).

An account holds several API keys; it creates them (each shown once), lists them (prefix,
created, last used) and revokes them, and a revoked key is refused from the very next
request in every API process. Operators do the same from the command line. A signing
secret rotated with ``overlap_seconds: 0`` stops signing at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
import sqlalchemy as sa
from falcon import testing

from backend.accounts import NewAccount
from backend.api.app import create_app
from backend.api_keys import MAX_LIVE_KEYS, PREFIX_LENGTH, revoke_by_prefix
from backend.context import Context, build_context
from backend.jobs.deliver import deliver
from backend.settings import Settings
from backend.store.api_keys import LAST_USED_RESOLUTION_SECONDS
from backend.store.tables import api_keys
from backend.store.types import utcnow
from tests.conftest import TEST_SECRET_KEY
from tests.support.receiver import WebhookReceiver
from tests.test_ssrf import ended_with_delivery, new_job

KEYS = "/v1/account/api-keys"
ACCOUNT = "/v1/account"
GENHOOK = str(Path(sys.executable).parent / "genhook")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def a_second_key(api: testing.TestClient, key: str) -> dict:  # type: ignore[type-arg]
    result = api.simulate_post(KEYS, headers=bearer(key))
    assert result.status_code == 201, result.text
    return result.json  # type: ignore[no-any-return]


def listed(api: testing.TestClient, key: str) -> list[dict]:  # type: ignore[type-arg]
    result = api.simulate_get(KEYS, headers=bearer(key))
    assert result.status_code == 200, result.text
    return result.json["data"]  # type: ignore[no-any-return]


# --- Create and list -----------------------------------------------------------------------


def test_a_new_key_is_shown_once_and_works_beside_the_first(
    api: testing.TestClient, account: NewAccount
) -> None:
    first = account.api_key
    # When the account creates a second key
    created = a_second_key(api, first)

    # Then the answer shows the key itself, once, with its prefix and id
    second = created["api_key"]
    assert second.startswith("gh_") and second != first
    assert created["prefix"] == second[:10] and created["id"].startswith("key_")
    assert created["revoked_at"] is None and created["current"] is False
    # And both keys authenticate
    for key in (first, second):
        assert api.simulate_get(ACCOUNT, headers=bearer(key)).status_code == 200
    # And the list shows both, oldest first, never the keys themselves
    keys = listed(api, second)
    assert [k["prefix"] for k in keys] == [first[:10], second[:10]]
    assert [k["current"] for k in keys] == [False, True]
    assert all("api_key" not in k for k in keys)
    assert first not in str(keys) and second not in str(keys)


def test_an_account_holds_at_most_the_limit_of_live_keys(
    api: testing.TestClient, account: NewAccount
) -> None:
    for _ in range(MAX_LIVE_KEYS - 1):
        a_second_key(api, account.api_key)
    # When one more is asked for
    result = api.simulate_post(KEYS, headers=bearer(account.api_key))
    # Then it is a 409, and no key was added
    assert result.status_code == 409, result.text
    assert len(listed(api, account.api_key)) == MAX_LIVE_KEYS


# --- Revoke --------------------------------------------------------------------------------


def test_a_revoked_key_is_refused_at_once_here_and_within_the_cache_time_elsewhere(
    api: testing.TestClient, ctx: Context, settings: Settings, account: NewAccount
) -> None:
    # Given a second API process remembering keys for 0.3 s, which has served the first key
    other_process = build_context(
        settings.model_copy(update={"api_key_cache_seconds": 0.3}), broker=dramatiq.get_broker()
    )
    other = testing.TestClient(create_app(other_process))
    try:
        assert other.simulate_get(ACCOUNT, headers=bearer(account.api_key)).status_code == 200
        second = a_second_key(api, account.api_key)["api_key"]
        first_id = listed(api, second)[0]["id"]

        # When the first key is revoked with the second, through the first process
        revoked = api.simulate_delete(f"{KEYS}/{first_id}", headers=bearer(second))

        # Then the answer says when
        assert revoked.status_code == 200, revoked.text
        assert revoked.json["revoked_at"] is not None
        # And the first key is refused at once by the process that revoked it
        refused = api.simulate_get(ACCOUNT, headers=bearer(account.api_key))
        assert refused.status_code == 401, refused.text
        # And by the other one once its cache time has passed
        time.sleep(0.4)
        refused = other.simulate_get(ACCOUNT, headers=bearer(account.api_key))
        assert refused.status_code == 401, refused.text
        # And the second still works, and the list shows the revocation
        assert other.simulate_get(ACCOUNT, headers=bearer(second)).status_code == 200
        assert [k["revoked_at"] is not None for k in listed(api, second)] == [True, False]
    finally:
        other_process.close()


def test_a_live_key_is_remembered_for_the_cache_time_without_a_lookup(
    ctx: Context, settings: Settings, account: NewAccount
) -> None:
    # Given an API process remembering keys for a minute, which has served a key
    remembering = build_context(
        settings.model_copy(update={"api_key_cache_seconds": 60}), broker=dramatiq.get_broker()
    )
    client = testing.TestClient(create_app(remembering))
    try:
        assert client.simulate_get(ACCOUNT, headers=bearer(account.api_key)).status_code == 200
        # When the key is revoked behind its back (as the operator's CLI would)
        revoke_by_prefix(ctx, account.account.email, account.api_key[:PREFIX_LENGTH])
        # Then it still answers from memory (no lookup per request), until the minute is up
        assert client.simulate_get(ACCOUNT, headers=bearer(account.api_key)).status_code == 200
        # And a process with the cache off refuses it at once
        uncached = build_context(
            settings.model_copy(update={"api_key_cache_seconds": 0}), broker=dramatiq.get_broker()
        )
        try:
            fresh = testing.TestClient(create_app(uncached))
            assert fresh.simulate_get(ACCOUNT, headers=bearer(account.api_key)).status_code == 401
        finally:
            uncached.close()
    finally:
        remembering.close()


def test_a_key_may_revoke_itself_while_another_is_live(
    api: testing.TestClient, account: NewAccount
) -> None:
    second = a_second_key(api, account.api_key)
    # When the second key revokes itself
    result = api.simulate_delete(f"{KEYS}/{second['id']}", headers=bearer(second["api_key"]))
    # Then that was its last request
    assert result.status_code == 200 and result.json["current"] is True
    assert api.simulate_get(ACCOUNT, headers=bearer(second["api_key"])).status_code == 401
    assert api.simulate_get(ACCOUNT, headers=bearer(account.api_key)).status_code == 200


def test_the_last_live_key_cannot_be_revoked_through_the_api(
    api: testing.TestClient, account: NewAccount
) -> None:
    (only,) = listed(api, account.api_key)
    # When the account's only key revokes itself
    result = api.simulate_delete(f"{KEYS}/{only['id']}", headers=bearer(account.api_key))
    # Then it is a 409 and the key still works
    assert result.status_code == 409, result.text
    assert "last live API key" in result.json["detail"]
    assert api.simulate_get(ACCOUNT, headers=bearer(account.api_key)).status_code == 200


@pytest.mark.parametrize("key_id", ["key_999999", "key_x", "42", "key_"])
def test_an_unknown_key_id_is_a_404(
    api: testing.TestClient, account: NewAccount, key_id: str
) -> None:
    a_second_key(api, account.api_key)
    result = api.simulate_delete(f"{KEYS}/{key_id}", headers=bearer(account.api_key))
    assert result.status_code == 404, result.text


def test_another_accounts_key_cannot_be_revoked_or_seen(
    api: testing.TestClient, account: NewAccount
) -> None:
    # Given another account with two keys
    signup = api.simulate_post("/v1/signup", json={"email": "other@example.com"})
    theirs = signup.json["api_key"]
    a_second_key(api, theirs)
    their_ids = [k["id"] for k in listed(api, theirs)]

    # When this account tries to revoke one of them
    result = api.simulate_delete(f"{KEYS}/{their_ids[0]}", headers=bearer(account.api_key))

    # Then it is a 404 and their key still works; this account's list shows only its own
    assert result.status_code == 404, result.text
    assert api.simulate_get(ACCOUNT, headers=bearer(theirs)).status_code == 200
    assert [k["prefix"] for k in listed(api, account.api_key)] == [account.api_key[:10]]


# --- Last used -----------------------------------------------------------------------------


def last_used(ctx: Context, prefix: str):  # type: ignore[no-untyped-def]
    with ctx.store.begin() as conn:
        return conn.execute(
            sa.select(api_keys.c.last_used_at).where(api_keys.c.key_prefix == prefix)
        ).scalar_one()


def test_last_used_is_recorded_and_rewritten_at_most_once_a_minute(
    api: testing.TestClient, ctx: Context, account: NewAccount
) -> None:
    prefix = account.api_key[:10]
    assert last_used(ctx, prefix) is None
    # When the key is used, its use is recorded
    before = utcnow()
    api.simulate_get(ACCOUNT, headers=bearer(account.api_key))
    first = last_used(ctx, prefix)
    assert first is not None and first >= before - timedelta(seconds=1)
    # And used again with the key looked up again (as once the cache's seconds are over),
    # nothing is rewritten
    ctx.key_cache.forget(hashlib.sha256(account.api_key.encode()).hexdigest())
    api.simulate_get(ACCOUNT, headers=bearer(account.api_key))
    assert last_used(ctx, prefix) == first
    # But once the record is older than the resolution, the next lookup refreshes it
    aged = first - timedelta(seconds=LAST_USED_RESOLUTION_SECONDS + 1)
    with ctx.store.begin() as conn:
        conn.execute(
            api_keys.update().where(api_keys.c.key_prefix == prefix).values(last_used_at=aged)
        )
    ctx.key_cache.forget(hashlib.sha256(account.api_key.encode()).hexdigest())
    listed_keys = listed(api, account.api_key)
    assert last_used(ctx, prefix) > aged
    assert listed_keys[0]["last_used_at"] is not None


# --- Operators -----------------------------------------------------------------------------


def genhook(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENHOOK_")}
    env["GENHOOK_SECRET_KEY"] = TEST_SECRET_KEY
    return subprocess.run(
        [GENHOOK, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def printed(output: str, label: str) -> str:
    for line in output.splitlines():
        if line.startswith(label):
            return line[len(label) :].split()[0]
    raise AssertionError(f"no {label!r} in {output!r}")


def test_an_operator_lists_issues_and_revokes_keys_from_the_command_line(
    tmp_path: Path, redis_url: str
) -> None:
    # Given an account made by the operator, with a second key
    assert genhook("migrate", cwd=tmp_path).returncode == 0
    made = genhook("accounts", "create", "--email", "ops@example.com", cwd=tmp_path)
    first = printed(made.stdout, "api key")
    issued = genhook("accounts", "create-key", "--email", "ops@example.com", cwd=tmp_path)
    assert issued.returncode == 0, issued.stderr
    second = printed(issued.stdout, "api key")

    # When the operator lists the keys, both prefixes show, never a key
    keys = genhook("accounts", "keys", "--email", "ops@example.com", cwd=tmp_path)
    assert keys.returncode == 0, keys.stderr
    assert first[:10] in keys.stdout and second[:10] in keys.stdout
    assert first not in keys.stdout and second not in keys.stdout

    # And revokes the first by its prefix
    revoked = genhook(
        "accounts", "revoke-key", "--email", "ops@example.com", "--prefix", first[:10], cwd=tmp_path
    )
    assert revoked.returncode == 0, revoked.stderr
    assert "live keys left  1" in revoked.stdout

    # Then the API refuses the first key and takes the second
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'var' / 'genhook.db'}", redis_url=redis_url
    )
    context = build_context(settings, broker=dramatiq.get_broker())
    try:
        api = testing.TestClient(create_app(context))
        assert api.simulate_get(ACCOUNT, headers=bearer(first)).status_code == 401
        assert api.simulate_get(ACCOUNT, headers=bearer(second)).status_code == 200
    finally:
        context.close()

    # And an operator may revoke the last key too (an account whose keys all leaked)
    last = genhook(
        "accounts",
        "revoke-key",
        "--email",
        "ops@example.com",
        "--prefix",
        second[:10],
        cwd=tmp_path,
    )
    assert last.returncode == 0 and "live keys left  0" in last.stdout
    # But a prefix that matches no live key changes nothing and exits 1
    again = genhook(
        "accounts", "revoke-key", "--email", "ops@example.com", "--prefix", "gh_nope", cwd=tmp_path
    )
    assert again.returncode == 1 and "no live API key" in again.stderr


# --- Signing-secret rotation without overlap ----------------------------------------------


def signatures(header: str) -> list[bytes]:
    return [base64.b64decode(part.split(",", 1)[1]) for part in header.split()]


def signed_by(secret: str, request: object) -> bool:
    """Whether one of the request's Standard Webhooks signatures is ``secret``'s."""
    headers = request.headers  # type: ignore[attr-defined]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode()
    content += request.body  # type: ignore[attr-defined]
    expected = hmac.new(key, content, hashlib.sha256).digest()
    return expected in signatures(headers["webhook-signature"])


@pytest.mark.parametrize(
    ("body", "old_signs"),
    [
        pytest.param({"overlap_seconds": 0}, False, id="overlap-0"),
        pytest.param(None, True, id="default-overlap"),
    ],
)
def test_a_rotation_with_no_overlap_retires_the_old_secret_at_once(
    api: testing.TestClient,
    ctx: Context,
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
    body: dict | None,  # type: ignore[type-arg]
    old_signs: bool,
) -> None:
    app, url = receiver
    old = account.signing_secret
    # When the account rotates its signing secret (with no overlap, or the default one)
    kwargs = {} if body is None else {"json": body}
    rotated = api.simulate_post(
        "/v1/account/rotate-signing-secret", headers=bearer(account.api_key), **kwargs
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json["secret"]

    # And a webhook is sent right after
    deliver(ctx, ended_with_delivery(ctx, new_job(ctx, account, f"{url}/hook")))

    # Then it is signed by the new secret, and by the old one only with an overlap
    (request,) = app.requests
    assert signed_by(new, request)
    assert signed_by(old, request) is old_signs
    assert len(signatures(request.headers["webhook-signature"])) == (2 if old_signs else 1)


def test_an_endpoint_secret_rotated_with_no_overlap_signs_alone(
    api: testing.TestClient, ctx: Context, account: NewAccount
) -> None:
    created = api.simulate_post(
        "/v1/webhook-endpoints",
        json={"url": "http://93.184.216.34/hook"},
        headers=bearer(account.api_key),
    )
    endpoint_id = created.json["id"]
    rotated = api.simulate_post(
        f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
        json={"overlap_seconds": 0},
        headers=bearer(account.api_key),
    )
    assert rotated.status_code == 200, rotated.text
    # The previous secret's end is now: it signs nothing sent from here on
    from backend.store import endpoints as endpoints_store
    from backend.webhooks.signing import active_secrets

    with ctx.store.begin() as conn:
        endpoint = endpoints_store.get_endpoint(conn, endpoint_id)
    assert endpoint is not None
    signing = active_secrets(
        endpoint.secret, endpoint.previous_secret, endpoint.previous_secret_expires_at, ctx.now()
    )
    assert [ctx.secret_box.open(secret) for secret in signing] == [rotated.json["secret"]]


@pytest.mark.parametrize("overlap", [-1, 7 * 24 * 3600 + 1, "soon", 1.5])
def test_a_bad_overlap_is_a_422_naming_it(
    api: testing.TestClient, account: NewAccount, overlap: object
) -> None:
    result = api.simulate_post(
        "/v1/account/rotate-signing-secret",
        json={"overlap_seconds": overlap},
        headers=bearer(account.api_key),
    )
    assert result.status_code == 422, result.text
    assert [e["field"] for e in result.json["errors"]] == ["overlap_seconds"]
