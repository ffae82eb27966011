"""Signing up, as the operator's ``signup_mode`` allows.

- ``open`` (local use): the account, its API key, signing secret and free credits at once
  (201); an email already taken is a 409.
- ``verify_email``: the answer is the same 202 whether the email is new or known, so signup
  cannot tell anyone which addresses have accounts. A new address gets an account at once,
  without key or credits, and a mail with a one-time link; a known, unverified one gets a
  fresh link; a verified one gets a mail saying someone tried. Following the link
  (:func:`verify`) grants the free credits through the ledger, exactly once, makes the API
  key and shows it with the signing secret: the only time they are shown.
- ``closed``: refused; operators create accounts with ``genhook accounts create``.

Both answers that matter can be replayed with an ``Idempotency-Key``
(``backend/idempotency.py``): a retried signup queues no second mail, a retried
verification shows the same key again instead of "already used".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from backend import ids, security
from backend.accounts import NewAccount, create_account, signup_answer
from backend.context import Context
from backend.errors import Conflict, Gone, NotFound, SignupClosed, SignupUnavailable
from backend.idempotency import Answer, IdempotencyKey, remember, run_once
from backend.schemas.accounts import SignupAccepted
from backend.settings import SignupMode
from backend.store import accounts as accounts_store
from backend.store import api_keys as api_keys_store
from backend.store import signup as store
from backend.store.ledger import LedgerReason
from backend.store.signup import MailKind

#: The scope of ``Idempotency-Key`` on a verification (signup's own is "signup").
VERIFY_SCOPE = "signup-verify"


def sign_up(
    ctx: Context,
    email: str,
    key: IdempotencyKey | None,
    *,
    count_attempt: Callable[[], None] = lambda: None,
) -> tuple[Answer, bool]:
    """The answer to ``POST /v1/signup``, and whether it is a replayed one.

    ``count_attempt`` runs (and may refuse with a 429) only when a signup is really
    attempted: a replayed answer costs nothing against the signup limits."""

    def attempt() -> Answer:
        count_attempt()
        if ctx.settings.signup_mode is SignupMode.OPEN:
            return signup_answer(create_account(ctx, email, idempotency=key))
        return _request_verification(ctx, email, key)

    return run_once(ctx, key, attempt)


def refuse_if_closed(ctx: Context) -> None:
    if ctx.settings.signup_mode is SignupMode.CLOSED:
        raise SignupClosed(
            "signup is closed on this server: its operator creates accounts "
            "(`genhook accounts create`)"
        )


def check_open(ctx: Context) -> None:
    """Refuse before reading the body when signup cannot work on this server."""
    refuse_if_closed(ctx)
    settings = ctx.settings
    if settings.signup_mode is SignupMode.VERIFY_EMAIL and not (
        settings.smtp_host and settings.signup_link_base
    ):
        raise SignupUnavailable(
            "signup verifies emails on this server, but its operator has not configured "
            "mail yet (GENHOOK_SMTP_HOST and GENHOOK_SIGNUP_LINK_BASE_URL); try again later"
        )


def accepted_answer(ctx: Context, email: str) -> Answer:
    """The one 202 of ``verify_email`` mode, whatever the address."""
    hours = ctx.settings.signup_verification_ttl_seconds / 3600
    body = SignupAccepted(
        email=email,
        detail=f"Check your inbox: a mail to {email} tells what happens next. If it holds a "
        f"link, follow it within {hours:g} hours to get your API key, your signing secret "
        f"and {ctx.settings.signup_credits} free credits.",
    )
    return Answer(202, body.model_dump_json())


def _request_verification(ctx: Context, email: str, key: IdempotencyKey | None) -> Answer:
    now = ctx.now()
    mail_id: str | None = None
    with ctx.store.begin() as conn:
        account = accounts_store.get_account_by_email(conn, email)
        if account is None:
            try:
                account = accounts_store.create_unverified_account(
                    conn,
                    account_id=ids.account_id(),
                    email=email,
                    signing_secret=ctx.secret_box.seal(security.new_signing_secret()),
                )
            except Conflict:  # a concurrent signup with this email committed first
                account = accounts_store.get_account_by_email(conn, email)
                assert account is not None
        kind = MailKind.VERIFY if account.verified_at is None else MailKind.ALREADY_REGISTERED
        last = store.last_mail_at(conn, account.id, kind)
        interval = timedelta(seconds=ctx.settings.signup_mail_interval_seconds)
        if last is None or now - last >= interval:
            mail_id = ids.mail_id()
            store.add_mail(conn, mail_id=mail_id, account_id=account.id, kind=kind, now=now)
        answer = accepted_answer(ctx, email)
        if key is not None:
            remember(conn, ctx, key, answer)
    if mail_id is not None:
        ctx.queue.send_signup_mail(mail_id)  # lost? the recovery pass sends it
    return answer


def verify(ctx: Context, token: str, key: IdempotencyKey | None) -> tuple[Answer, bool]:
    """Follow a verification link: a 200 with the new API key and the signing secret, or
    ``NotFound`` for a token genhook never made, ``Gone`` for a used or expired one."""
    refuse_if_closed(ctx)
    return run_once(ctx, key, lambda: _verify(ctx, token, key))


def token_state(ctx: Context, token: str) -> store.TokenRecord:
    """The token's row if following it would work; else the error it would get."""
    with ctx.store.begin() as conn:
        found = store.find_token(conn, security.hash_verification_token(token))
    if found is None:
        raise NotFound("this verification link is not valid: copy the whole link from the mail")
    if found.used_at is not None:
        raise Gone(
            "this verification link was already used: the API key was shown then, and only "
            "then; if it was lost, ask the operator for a new one"
        )
    if found.expires_at <= ctx.now():
        raise Gone("this verification link expired: sign up again with the same address")
    return found


def _verify(ctx: Context, token: str, key: IdempotencyKey | None) -> Answer:
    found = token_state(ctx, token)
    now = ctx.now()
    api_key = security.new_api_key()
    credits = ctx.settings.signup_credits
    with ctx.store.begin() as conn:
        if not store.use_token(conn, found.id, now):
            raise Gone("this verification link was already used")  # by a concurrent request
        if not store.mark_verified(conn, found.account_id, credits, now):
            raise Gone("this account was already verified through another link")
        accounts_store.add_ledger_entry(
            conn,
            account_id=found.account_id,
            job_id=None,
            delta=credits,
            reason=LedgerReason.SIGNUP.value,
        )
        api_keys_store.add_key(
            conn,
            account_id=found.account_id,
            key_hash=security.hash_api_key(api_key),
            key_prefix=api_key[:10],
            now=now,
        )
        store.retire_tokens(conn, found.account_id, now)
        account = accounts_store.get_account(conn, found.account_id)
        assert account is not None
        answer = signup_answer(
            NewAccount(account, api_key, ctx.secret_box.open(account.signing_secret)), status=200
        )
        if key is not None:
            remember(conn, ctx, key, answer)
    return answer
