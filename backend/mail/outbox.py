"""Sending a signup mail from the outbox, once, retried on a schedule, never lost silently.

The signup writes a ``signup_mails`` row in its own transaction and enqueues this step, so
the request never waits on the mail server. Each attempt is bounded by
``smtp_timeout_seconds``; a failure is logged, recorded on the row (``last_error``) and
retried after the next delay of ``smtp_retry_schedule``; a mail still unsent after the
last one, or refused for good by the server, is marked ``failed`` and logged as an error.
A lost message leaves the row ``pending`` and overdue, and the recovery pass enqueues it
again (``backend/jobs/sweep.py``). A verification link's token is made right before the
attempt that carries it, and only its hash is kept: it exists nowhere but in the mail.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from email.message import EmailMessage

from backend import locks, redis_keys, security
from backend.context import Context
from backend.mail import smtp
from backend.mail.signup_mails import already_registered_mail, verification_mail
from backend.store import accounts as accounts_store
from backend.store import signup as store
from backend.store.signup import MailKind, MailStatus

log = logging.getLogger(__name__)

#: A message may arrive this early (clock skew between processes) and still be sent.
EARLY_SLACK_SECONDS = 1.0


def send_signup_mail(ctx: Context, mail_id: str) -> None:
    """One attempt at the mail, unless another worker is on it or it is no longer due."""
    with locks.held(
        ctx.redis, redis_keys.mail_lock(mail_id), redis_keys.MAIL_LOCK_TTL_SECONDS
    ) as mine:
        if mine:
            _attempt(ctx, mail_id)


def _attempt(ctx: Context, mail_id: str) -> None:
    now = ctx.now()
    token_id: int | None = None
    with ctx.store.begin() as conn:
        mail = store.get_mail(conn, mail_id)
        if mail is None or mail.status != MailStatus.PENDING:
            return
        if mail.next_attempt_at and mail.next_attempt_at > now + timedelta(
            seconds=EARLY_SLACK_SECONDS
        ):
            return  # a duplicate message: the scheduled one will come
        account = accounts_store.get_account(conn, mail.account_id)
        assert account is not None  # accounts are never deleted
        message: EmailMessage
        if mail.kind == MailKind.VERIFY:
            token = security.new_verification_token()
            token_id = store.add_token(
                conn,
                account_id=account.id,
                token_hash=security.hash_verification_token(token),
                now=now,
                expires_at=now + timedelta(seconds=ctx.settings.signup_verification_ttl_seconds),
            )
            message = verification_mail(ctx.settings, account.email, token)
        else:
            message = already_registered_mail(ctx.settings, account.email)
    try:
        smtp.send(ctx.settings, message)
    except smtp.MailNotSent as exc:
        _failed(ctx, mail, token_id, exc)
        return
    with ctx.store.begin() as conn:
        store.record_attempt(conn, mail_id, now=ctx.now(), status=MailStatus.SENT)
    log.info("signup mail %s (%s) sent to account %s", mail_id, mail.kind, mail.account_id)


def _failed(
    ctx: Context, mail: store.MailRecord, token_id: int | None, exc: smtp.MailNotSent
) -> None:
    schedule = ctx.settings.smtp_retry_schedule
    attempts = mail.attempt_count + 1
    now = ctx.now()
    retry_in = None if exc.permanent or attempts >= len(schedule) else schedule[attempts]
    with ctx.store.begin() as conn:
        if token_id is not None:
            store.drop_token(conn, token_id)  # never delivered: nobody holds it
        store.record_attempt(
            conn,
            mail.id,
            now=now,
            status=MailStatus.PENDING if retry_in is not None else MailStatus.FAILED,
            error=str(exc)[:2000],
            next_attempt_at=now + timedelta(seconds=retry_in) if retry_in is not None else None,
        )
    if retry_in is None:
        log.error(
            "signup mail %s (%s) to account %s FAILED after %d attempt(s), not retried: %s",
            mail.id,
            mail.kind,
            mail.account_id,
            attempts,
            exc,
        )
        return
    log.warning(
        "signup mail %s (%s) attempt %d failed (%s); next in %gs",
        mail.id,
        mail.kind,
        attempts,
        exc,
        retry_in,
    )
    ctx.queue.send_signup_mail(mail.id, delay_seconds=retry_in)
