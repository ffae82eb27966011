"""The words of the two signup mails. Both go to the address that was signed up with, so
only its owner learns whether it already had an account."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from backend.settings import Settings

#: The path the verification link points at (``backend/api/resources/signup.py``).
VERIFY_PATH = "/v1/signup/verify"


def verify_link(settings: Settings, token: str) -> str:
    return f"{settings.signup_link_base}{VERIFY_PATH}?token={token}"


def verification_mail(settings: Settings, to: str, token: str) -> EmailMessage:
    hours = settings.signup_verification_ttl_seconds / 3600
    body = f"""Hello,

Someone, hopefully you, signed up to genhook at {settings.signup_link_base} with this address.
Open this link within {hours:g} hours to confirm it:

  {verify_link(settings, token)}

The page it opens shows your API key and webhook signing secret once, and adds your
{settings.signup_credits} free credits. (An API client can POST to the link instead.)

If you did not sign up, ignore this mail: nothing happens until the link is followed.
"""
    return _message(settings, to, "Confirm your genhook signup", body)


def already_registered_mail(settings: Settings, to: str) -> EmailMessage:
    body = f"""Hello,

Someone, perhaps you, tried to sign up to genhook at {settings.signup_link_base} with this
address, which already has an account. Nothing was changed, and no new key was made.

If it was you, keep using the API key you have; if you lost it, ask the operator of this
server for a new one. If it was not you, ignore this mail.
"""
    return _message(settings, to, "Someone tried to sign up with your address", body)


def _message(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="genhook")
    message["Auto-Submitted"] = "auto-generated"
    # 7bit keeps the link whole on its line in the raw message (quoted-printable would cut
    # it with soft line breaks, which a plain-text reader or a copy from the source keeps).
    message.set_content(body, cte="7bit" if body.isascii() else "quoted-printable")
    return message
