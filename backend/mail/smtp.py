"""One SMTP conversation with the operator's server, bounded in time.

smtplib's errors, and the socket and TLS errors beneath them, are translated here into
:class:`MailNotSent`, which says whether trying again can help.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from backend.settings import Settings, SmtpSecurity


class MailNotSent(Exception):
    """The server did not take the message. ``permanent``: it refused it for good (a 5xx
    such as an unknown recipient), so retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def send(settings: Settings, message: EmailMessage) -> None:
    """Hand ``message`` to ``settings.smtp_host``; every step is bounded by
    ``smtp_timeout_seconds``, and the server's certificate is verified under TLS."""
    if not settings.smtp_host:
        raise MailNotSent("GENHOOK_SMTP_HOST is not set", permanent=False)
    timeout = settings.smtp_timeout_seconds
    tls = ssl.create_default_context()
    try:
        client: smtplib.SMTP
        if settings.smtp_security is SmtpSecurity.SSL:
            client = smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, timeout=timeout, context=tls
            )
        else:
            client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        with client:
            if settings.smtp_security is SmtpSecurity.STARTTLS:
                client.starttls(context=tls)
            if settings.smtp_username:
                client.login(settings.smtp_username, settings.smtp_password)
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailNotSent(f"recipient refused: {exc.recipients}", permanent=True) from None
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        raise MailNotSent(f"SMTP {exc.smtp_code} {text}", permanent=exc.smtp_code >= 500) from None
    except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timeout, TLS
        raise MailNotSent(f"{type(exc).__name__}: {exc}", permanent=False) from None
