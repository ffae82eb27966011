"""Webhook signatures: genhook's own header and the Standard Webhooks ones.

``X-Genhook-Signature`` is ``sha256=`` + hex HMAC-SHA256 of the raw body, keyed by the
signing secret string exactly as the user received it (``whsec_…`` included), so the
product page's verification snippets work unchanged. The ``webhook-*`` headers follow
https://www.standardwebhooks.com and are produced by the ``standardwebhooks`` library.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from standardwebhooks import Webhook


def genhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_headers(
    *, secret: str, message_id: str, event: str, timestamp: datetime, body: bytes
) -> dict[str, str]:
    """Every header that identifies and authenticates one webhook message."""
    return {
        "Content-Type": "application/json",
        "X-Genhook-Event": event,
        "X-Genhook-Delivery-Id": message_id,
        "X-Genhook-Signature": genhook_signature(secret, body),
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, timestamp, body.decode()),
    }
