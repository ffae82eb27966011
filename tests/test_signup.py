"""Signup in each ``GENHOOK_SIGNUP_MODE`` (finding 3 of issue 11).

Under ``verify_email`` the mail goes through a real SMTP server on 127.0.0.1 (aiosmtpd),
the test reads the real message, and follows the real link over HTTP to a real server.
``assert_books_balance`` (conftest) checks after each test that every balance is its ledger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import pytest
import sqlalchemy as sa
from falcon import testing

from backend import bundled_redis
from backend.api.app import create_app
from backend.context import Context
from backend.jobs.sweep import recover_overdue
from backend.settings import Settings, SignupMode, SmtpSecurity
from backend.store import accounts as accounts_store
from backend.store import signup as signup_store
from backend.store.tables import accounts, api_keys, credit_ledger, signup_mails, signup_tokens
from tests.conftest import make_settings, wait_until
from tests.support.smtp_server import Inbox, link_in, self_signed_tls, smtp_server, text_of
from tests.support.wsgi_server import serve_wsgi

NEW = "new@example.com"
#: Generous: 16 requests at once on a loaded machine queue for SQLite's one writer.
post = partial(httpx.post, timeout=30.0)
get = partial(httpx.get, timeout=30.0)
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def api_port() -> int:
    return bundled_redis.free_port()


@pytest.fixture
def settings(
    database_url: str, redis_url: str, simulator: str, smtp: tuple[Inbox, int], api_port: int
) -> Settings:
    """What ``genhook api`` runs by default: ``verify_email``, with a mail server."""
    return make_settings(
        database_url,
        redis_url,
        simulator,
        signup_mode="verify_email",
        smtp_host="127.0.0.1",
        smtp_port=smtp[1],
        smtp_security="none",
        smtp_from="genhook <no-reply@genhook.test>",
        smtp_retry_schedule="0s,0.3s,0.3s",
        signup_link_base_url=f"http://127.0.0.1:{api_port}",
        signup_mail_interval_seconds=0,
    )


@pytest.fixture
def inbox(smtp: tuple[Inbox, int]) -> Inbox:
    return smtp[0]


@pytest.fixture
def server(ctx: Context, api_port: int) -> Iterator[str]:
    """The API on a real port: the one the mailed links point at."""
    with serve_wsgi(create_app(ctx), port=api_port) as url:
        yield url


def sign_up(server: str, email: str = NEW, **headers: str) -> httpx.Response:
    return post(f"{server}/v1/signup", json={"email": email}, headers=headers)


def mail_to(inbox: Inbox, address: str, count: int = 1) -> Any:
    """The ``count``-th mail to ``address``, once it arrived."""
    return wait_until(lambda: len(inbox.to(address)) >= count and inbox.to(address)[count - 1])


def rows(ctx: Context, table: sa.Table, *where: Any) -> list[sa.Row]:
    with ctx.store.begin() as conn:
        return list(conn.execute(sa.select(table).where(*where)))


def signup_ledger(ctx: Context, email: str) -> list[int]:
    with ctx.store.begin() as conn:
        return [
            row.delta
            for row in conn.execute(
                sa.select(credit_ledger.c.delta)
                .join(accounts, accounts.c.id == credit_ledger.c.account_id)
                .where(accounts.c.email == email, credit_ledger.c.reason == "signup")
            )
        ]


# --- verify_email: the whole path -----------------------------------------------------


def test_a_new_address_gets_its_key_and_credits_only_when_the_mailed_link_is_followed(
    ctx: Context, worker: dramatiq.Worker, server: str, inbox: Inbox
) -> None:
    # When someone signs up
    answer = sign_up(server)

    # Then the answer says to check the inbox, and shows no key
    assert answer.status_code == 202
    assert answer.json()["object"] == "signup" and answer.json()["status"] == "check_inbox"
    assert "api_key" not in answer.json()
    # and the account exists at once, verified by nobody, with no key and no credits
    (account,) = rows(ctx, accounts, accounts.c.email == NEW)
    assert (account.verified_at, account.credits) == (None, 0)
    assert rows(ctx, api_keys, api_keys.c.account_id == account.id) == []

    # When the mail arrives, it holds a link to this server
    mail = mail_to(inbox, NEW)
    assert mail["From"] == "genhook <no-reply@genhook.test>"
    link = link_in(mail)
    assert link.startswith(f"{server}/v1/signup/verify?token=")
    assert link in mail.as_string()  # whole on its line as sent, not cut by the encoding
    # and only a hash of its token is stored
    token = link.rsplit("=", 1)[1]
    stored = [row.token_hash for row in rows(ctx, signup_tokens)]
    assert len(stored) == 1 and token not in stored[0]

    # When a browser (or a mail scanner) opens it, a page with a button comes back, and
    # nothing is used up
    page = get(link, headers=BROWSER)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in page.text and "gh_" not in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert rows(ctx, accounts, accounts.c.email == NEW)[0].credits == 0

    # When the link is followed (POST, as the button does)
    followed = post(link)

    # Then the key and secret are shown, with the free credits
    assert followed.status_code == 200
    shown = followed.json()
    assert shown["email"] == NEW and shown["credits"] == 50
    assert shown["api_key"].startswith("gh_") and shown["signing_secret"].startswith("whsec_")
    # and the key works
    me = get(f"{server}/v1/account", headers={"Authorization": f"Bearer {shown['api_key']}"})
    assert me.status_code == 200 and me.json()["credits"] == 50
    assert signup_ledger(ctx, NEW) == [50]


def test_a_browser_that_presses_the_button_sees_its_key_on_a_page(
    ctx: Context, worker: dramatiq.Worker, server: str, inbox: Inbox
) -> None:
    sign_up(server)
    link = link_in(mail_to(inbox, NEW))

    page = post(link, headers={**BROWSER, "Content-Type": "application/x-www-form-urlencoded"})

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "gh_" in page.text and "whsec_" in page.text and "not shown again" in page.text
    # and a second press tells the link was used, as a page too
    again = post(link, headers=BROWSER)
    assert again.status_code == 410 and "already used" in again.text
    assert again.headers["content-type"].startswith("text/html")


# --- no account enumeration ------------------------------------------------------------


def test_a_known_address_gets_the_same_answer_and_its_owner_a_notice(
    ctx: Context, worker: dramatiq.Worker, server: str, inbox: Inbox
) -> None:
    # Given an account made and verified through signup
    sign_up(server, "known@example.com")
    key = post(link_in(mail_to(inbox, "known@example.com"))).json()["api_key"]

    # When someone signs up with that address, and with an unknown one
    known = sign_up(server, "known@example.com")
    unknown = sign_up(server, "unknown@example.com")

    # Then both answers are the same, but for the address they echo
    assert known.status_code == unknown.status_code == 202
    assert known.json() == {
        **unknown.json(),
        "email": "known@example.com",
        "detail": unknown.json()["detail"].replace("unknown@", "known@"),
    }
    assert set(known.headers) == set(unknown.headers)
    # and the owner of the known address is told someone tried, with no link in it
    notice = mail_to(inbox, "known@example.com", count=2)
    assert notice["Subject"] == "Someone tried to sign up with your address"
    assert "/v1/signup/verify" not in text_of(notice)
    # while the unknown address gets its link
    assert link_in(mail_to(inbox, "unknown@example.com"))
    # and nothing changed for the known account: one key, one signup grant
    (account,) = rows(ctx, accounts, accounts.c.email == "known@example.com")
    assert len(rows(ctx, api_keys, api_keys.c.account_id == account.id)) == 1
    assert signup_ledger(ctx, "known@example.com") == [50]
    me = get(f"{server}/v1/account", headers={"Authorization": f"Bearer {key}"})
    assert me.json()["credits"] == 50


# --- exactly once --------------------------------------------------------------------


def test_concurrent_follows_of_one_link_grant_the_credits_once(
    ctx: Context, worker: dramatiq.Worker, server: str, inbox: Inbox
) -> None:
    sign_up(server)
    link = link_in(mail_to(inbox, NEW))

    start = threading.Barrier(16)

    def follow(_: int) -> httpx.Response:
        start.wait()
        return post(link)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(follow, range(16)))

    assert sorted(a.status_code for a in answers) == [200] + [410] * 15
    assert signup_ledger(ctx, NEW) == [50]
    (account,) = rows(ctx, accounts, accounts.c.email == NEW)
    assert account.credits == 50
    assert len(rows(ctx, api_keys, api_keys.c.account_id == account.id)) == 1


def test_the_database_lets_a_token_be_used_and_an_account_verified_once(ctx: Context) -> None:
    # The two guards that make the grant exactly-once whatever the timing of requests
    now = ctx.now()
    with ctx.store.begin() as conn:
        account = accounts_store.create_unverified_account(
            conn, account_id="acct_1", email=NEW, signing_secret=ctx.secret_box.seal("whsec_x")
        )
        token = signup_store.add_token(
            conn,
            account_id=account.id,
            token_hash="h" * 64,
            now=now,
            expires_at=now + timedelta(hours=1),
        )
    with ctx.store.begin() as conn:
        used = [signup_store.use_token(conn, token, now) for _ in range(2)]
        verified = [signup_store.mark_verified(conn, account.id, 50, now) for _ in range(2)]
        conn.execute(sa.update(accounts).values(credits=0))  # leave the books balanced

    assert used == [True, False]
    assert verified == [True, False]


def test_two_links_of_one_address_grant_the_credits_once(
    ctx: Context, worker: dramatiq.Worker, server: str, inbox: Inbox
) -> None:
    # Given two signups with one address before either link is followed: two links
    sign_up(server)
    first = link_in(mail_to(inbox, NEW))
    sign_up(server)
    second = link_in(mail_to(inbox, NEW, count=2))
    assert first != second

    # When both are followed
    one, other = post(second), post(first)

    # Then the first followed works and the other is used up with it
    assert (one.status_code, other.status_code) == (200, 410)
    assert signup_ledger(ctx, NEW) == [50]


def test_a_used_link_is_410_and_a_made_up_one_404(
    ctx: Context, worker: dramatiq.Worker, server: str, inbox: Inbox
) -> None:
    sign_up(server)
    link = link_in(mail_to(inbox, NEW))
    assert post(link).status_code == 200

    again = post(link)
    opened = get(link)
    made_up = post(f"{server}/v1/signup/verify?token=abcdefghijklmnopqrstuvwxyz0123456789")
    malformed = post(f"{server}/v1/signup/verify?token=not%20a%20token")

    assert again.status_code == opened.status_code == 410
    assert again.headers["content-type"] == "application/problem+json"
    assert "already used" in again.json()["detail"]
    assert made_up.status_code == 404
    assert malformed.status_code == 422 and malformed.json()["errors"][0]["field"] == "token"
    assert signup_ledger(ctx, NEW) == [50]


def test_an_expired_link_is_410_and_signing_up_again_sends_a_fresh_one(
    ctx: Context, worker: dramatiq.Worker, server: str, inbox: Inbox
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"signup_verification_ttl_seconds": 1})
    sign_up(server)
    stale = link_in(mail_to(inbox, NEW))
    time.sleep(1.2)

    expired = post(stale)

    assert expired.status_code == 410 and "expired" in expired.json()["detail"]
    assert rows(ctx, accounts, accounts.c.email == NEW)[0].credits == 0
    # When the person signs up again, a fresh link comes, and works
    assert sign_up(server).status_code == 202
    fresh = link_in(mail_to(inbox, NEW, count=2))
    assert post(fresh).status_code == 200
    assert signup_ledger(ctx, NEW) == [50]


# --- Idempotency-Key -------------------------------------------------------------------


def test_a_retried_signup_with_its_key_is_replayed_and_sends_one_mail(
    ctx: Context, worker: dramatiq.Worker, server: str, inbox: Inbox
) -> None:
    first = sign_up(server, **{"Idempotency-Key": "signup-1"})
    again = sign_up(server, **{"Idempotency-Key": "signup-1"})
    other_body = sign_up(server, "other@example.com", **{"Idempotency-Key": "signup-1"})

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert other_body.status_code == 422
    assert other_body.json()["errors"][0]["field"] == "Idempotency-Key"
    mail_to(inbox, NEW)
    time.sleep(0.5)  # a second mail would have arrived by now
    assert len(inbox.to(NEW)) == 1 and len(rows(ctx, signup_mails)) == 1


def test_a_retried_verification_with_its_key_shows_the_same_key_again(
    ctx: Context, worker: dramatiq.Worker, server: str, inbox: Inbox
) -> None:
    sign_up(server)
    link = link_in(mail_to(inbox, NEW))

    first = post(link, headers={"Idempotency-Key": "verify-1"})
    again = post(link, headers={"Idempotency-Key": "verify-1"})
    without = post(link)

    assert first.status_code == again.status_code == 200
    assert again.json()["api_key"] == first.json()["api_key"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert without.status_code == 410
    assert signup_ledger(ctx, NEW) == [50]


# --- mail that does not get through at once --------------------------------------------


def test_a_mail_the_server_defers_is_retried_and_arrives(
    ctx: Context, worker: dramatiq.Worker, server: str, inbox: Inbox
) -> None:
    # Given a mail server that defers the first attempts
    inbox.refuse_with = "451 4.3.0 try again later"
    sign_up(server)
    wait_until(lambda: inbox.refused >= 1)
    (mail,) = wait_until(lambda: [m for m in rows(ctx, signup_mails) if m.attempt_count >= 1])
    assert mail.status == "pending" and "451" in mail.last_error

    # When it takes mail again
    inbox.refuse_with = None

    # Then the mail arrives, its link works, and the token of the failed attempt is gone
    link = link_in(mail_to(inbox, NEW))
    assert post(link).status_code == 200
    assert len(rows(ctx, signup_tokens)) == 1
    assert wait_until(lambda: rows(ctx, signup_mails)[0].status == "sent")


def test_a_mail_refused_for_good_is_marked_failed_and_logged(
    ctx: Context,
    worker: dramatiq.Worker,
    server: str,
    inbox: Inbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbox.refuse_with = "550 5.1.1 no such user"
    with caplog.at_level(logging.ERROR, logger="backend.mail.outbox"):
        sign_up(server)
        (mail,) = wait_until(lambda: [m for m in rows(ctx, signup_mails) if m.status == "failed"])

    assert mail.attempt_count == 1 and "550" in mail.last_error
    assert any("FAILED" in r.getMessage() and mail.id in r.getMessage() for r in caplog.records)
    assert rows(ctx, signup_tokens) == []  # its link was never sent: no token is left


def test_a_lost_mail_message_is_sent_by_the_recovery_pass(
    ctx: Context, server: str, inbox: Inbox
) -> None:
    # Given a signup whose mail message was lost (Redis flushed before any worker ran)
    sign_up(server)
    ctx.redis.flushdb()

    # When the recovery pass runs, and a worker then
    report = recover_overdue(ctx, grace_seconds=0)
    worker = dramatiq.Worker(dramatiq.get_broker(), worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        mail = mail_to(inbox, NEW)
    finally:
        worker.stop(timeout=10_000)
        broker = dramatiq.get_broker()
        broker.middleware[:] = [
            m for m in broker.middleware if type(m).__name__ != "_WorkerMiddleware"
        ]

    # Then the mail was sent all the same
    assert report.mails_resent == 1
    assert link_in(mail)


def test_starttls_is_never_skipped_and_an_untrusted_certificate_is_refused(
    ctx: Context, worker: dramatiq.Worker, server: str, inbox: Inbox, tmp_path: Path
) -> None:
    # Given STARTTLS required (the default) and one attempt per mail
    ctx.settings = ctx.settings.model_copy(
        update={"smtp_security": SmtpSecurity.STARTTLS, "smtp_retry_schedule": [0.0]}
    )

    # When the server offers no STARTTLS, the mail is not sent in the clear
    sign_up(server, "plain@example.com")
    (plain,) = wait_until(lambda: [m for m in rows(ctx, signup_mails) if m.status == "failed"])
    assert "STARTTLS" in plain.last_error and inbox.messages == []

    # When it offers STARTTLS with a certificate nobody vouches for, nothing is sent either
    with smtp_server(tls=self_signed_tls(tmp_path)) as (tls_inbox, port):
        ctx.settings = ctx.settings.model_copy(update={"smtp_port": port})
        sign_up(server, "tls@example.com")
        failed = wait_until(
            lambda: [m for m in rows(ctx, signup_mails) if m.status == "failed" and m != plain]
        )
    assert "CERTIFICATE_VERIFY_FAILED" in failed[0].last_error
    assert tls_inbox.messages == []


# --- the other modes --------------------------------------------------------------------


def test_closed_signup_is_a_403_problem_and_writes_nothing(ctx: Context) -> None:
    ctx.settings = ctx.settings.model_copy(update={"signup_mode": SignupMode.CLOSED})
    api = testing.TestClient(create_app(ctx))

    result = api.simulate_post("/v1/signup", json={"email": NEW})
    link = api.simulate_post("/v1/signup/verify", params={"token": "abc"})

    assert result.status_code == link.status_code == 403
    assert result.headers["content-type"] == "application/problem+json"
    assert result.json["type"] == "urn:genhook:problem:signup-closed"
    assert "genhook accounts create" in result.json["detail"]
    assert rows(ctx, accounts) == []


def test_verify_email_without_mail_settings_is_a_503_naming_them(ctx: Context) -> None:
    ctx.settings = ctx.settings.model_copy(update={"smtp_host": ""})
    api = testing.TestClient(create_app(ctx))

    result = api.simulate_post("/v1/signup", json={"email": NEW})

    assert result.status_code == 503
    assert "GENHOOK_SMTP_HOST" in result.json["detail"]
    assert rows(ctx, accounts) == []


def test_open_signup_answers_the_key_at_once(ctx: Context) -> None:
    ctx.settings = ctx.settings.model_copy(update={"signup_mode": SignupMode.OPEN})
    api = testing.TestClient(create_app(ctx))

    result = api.simulate_post("/v1/signup", json={"email": NEW})

    assert result.status_code == 201 and result.json["api_key"].startswith("gh_")
    assert signup_ledger(ctx, NEW) == [50]


def test_the_default_mode_is_verify_email_and_the_old_switch_still_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("GENHOOK_SIGNUP_MODE", "GENHOOK_SIGNUP_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().signup_mode is SignupMode.VERIFY_EMAIL
    monkeypatch.setenv("GENHOOK_SIGNUP_ENABLED", "false")
    assert Settings().signup_mode is SignupMode.CLOSED
    monkeypatch.setenv("GENHOOK_SIGNUP_MODE", "open")  # an explicit mode wins
    assert Settings().signup_mode is SignupMode.OPEN


def test_genhook_up_runs_open_unless_told_and_genhook_api_warns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from backend.cli import _say_signup_mode
    from backend.up import local_signup_mode

    for name in ("GENHOOK_SIGNUP_MODE", "GENHOOK_SIGNUP_ENABLED", "GENHOOK_SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    # `genhook up`: open by default, the operator's choice when there is one
    assert local_signup_mode(Settings()) is SignupMode.OPEN
    assert local_signup_mode(Settings(signup_mode="closed")) is SignupMode.CLOSED
    assert local_signup_mode(Settings(signup_enabled=False)) is SignupMode.CLOSED

    # `genhook api`: says at start that signup cannot work without mail, and when it is open
    _say_signup_mode(Settings())
    assert "GENHOOK_SMTP_HOST" in capsys.readouterr().err
    _say_signup_mode(Settings(signup_mode="open"))
    assert "OPEN" in capsys.readouterr().err
