"""Webhook signatures: genhook's own header and the Standard Webhooks ones.

``X-Genhook-Signature`` is ``sha256=`` + hex HMAC-SHA256 of the raw body, keyed by the
signing secret string exactly as the user received it (``whsec_…`` included), so the
product page's verification snippets work unchanged. The ``webhook-*`` headers follow
https://www.standardwebhooks.com and are produced by the ``standardwebhooks`` library.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook


def genhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_headers(
    *,
    secrets: Sequence[str],
    message_id: str,
    event: str,
    timestamp: datetime,
    body: bytes,
) -> dict[str, str]:
    """Every header that identifies and authenticates one webhook message.

    ``secrets`` is the current secret first, then (during a rotation's overlap) the previous
    one: ``webhook-signature`` carries one space-separated ``v1,`` signature per secret, so a
    receiver verifies with whichever it holds; ``X-Genhook-Signature`` uses the current one.
    """
    if not secrets:
        raise ValueError("at least one signing secret is needed")
    return {
        "Content-Type": "application/json",
        "X-Genhook-Event": event,
        "X-Genhook-Delivery-Id": message_id,
        "X-Genhook-Signature": genhook_signature(secrets[0], body),
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(
            Webhook(secret).sign(message_id, timestamp, body.decode()) for secret in secrets
        ),
    }


def active_secrets(
    current: str, previous: str | None, previous_expires_at: datetime | None, now: datetime
) -> list[str]:
    """The secrets that sign at ``now``: the current one, plus the previous one until its
    overlap after a rotation ends."""
    if previous and previous_expires_at is not None and now < previous_expires_at:
        return [current, previous]
    return [current]
