"""A small genhook webhook receiver, stdlib only: run it, point a job's webhook_url at it.

It checks what a receiver must check, the Standard Webhooks way (https://www.standardwebhooks.com):
the ``webhook-signature`` HMAC over ``webhook-id.webhook-timestamp.raw body``, a timestamp
within five minutes of now (an older message is a replay of a captured one), and a
``webhook-id`` it has not handled yet (genhook delivers at least once). ``X-Genhook-Signature``
signs the body alone, so a captured webhook would verify with it forever: it is not used here.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["GENHOOK_SIGNING_SECRET"]  # the whsec_… string, as given
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))
TOLERANCE_SECONDS = 5 * 60
handled: dict[str, float] = {}  # webhook-id → when; in production, a table kept for 7 days


def refusal(headers, body: bytes) -> str | None:
    """Why this request is not a fresh genhook webhook, or None when it is."""
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not (msg_id and stamp.isdigit() and abs(time.time() - int(stamp)) <= TOLERANCE_SECONDS):
        return "missing headers, or a timestamp more than 5 minutes from now (a replay)"
    expected = hmac.new(KEY, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    offered = [s[3:] for s in headers.get("webhook-signature", "").split() if s.startswith("v1,")]
    if not any(hmac.compare_digest(base64.b64encode(expected).decode(), s) for s in offered):
        return "no webhook-signature matches the signing secret"
    return None


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        reason = refusal(self.headers, body)
        msg_id = self.headers.get("webhook-id", "")
        if reason:
            print("REFUSED", reason, flush=True)
        elif msg_id in handled:
            print("duplicate", msg_id, "already handled", flush=True)
        else:
            handled[msg_id] = time.time()
            event = json.loads(body)
            print("verified", event["event"], event["id"], event["output_url"], flush=True)
        self.send_response(401 if reason else 200)
        self.end_headers()

    def log_message(self, *args):  # one line per webhook is enough
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 9000), Hook).serve_forever()
