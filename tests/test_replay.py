"""Every receiver genhook ships or documents refuses a replayed webhook.

A captured webhook verifies forever with the legacy ``X-Genhook-Signature`` (the body alone
is signed). The receivers genhook ships (``examples/receiver.py``) and documents (the README's
Node.js function) verify the Standard Webhooks signature over id, timestamp and body, refuse a
timestamp more than five minutes from now, and handle a ``webhook-id`` once. The messages here
are signed by genhook's own signer (``backend.webhooks.signing``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from backend import security
from backend.bundled_redis import free_port
from backend.webhooks.signing import genhook_signature, signature_headers
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
SECRET = security.new_signing_secret()
OTHER_SECRET = security.new_signing_secret()
BODY = json.dumps(
    {"event": "video.generation.completed", "id": "vgen_replay", "output_url": "http://x/o"}
).encode()


@dataclass
class Message:
    headers: dict[str, str]
    body: bytes = BODY


def signed(
    *, age: timedelta = timedelta(0), secrets: list[str] | None = None, msg_id: str = "dlv_1"
) -> Message:
    """A webhook exactly as genhook signs it, sent ``age`` ago."""
    headers = signature_headers(
        secrets=secrets or [SECRET],
        message_id=msg_id,
        event="video.generation.completed",
        timestamp=datetime.now(UTC) - age,
        body=BODY,
    )
    return Message(headers)


def legacy_only() -> Message:
    """What a receiver of the legacy header alone would accept: a valid body signature."""
    return Message(
        {"Content-Type": "application/json", "X-Genhook-Signature": genhook_signature(SECRET, BODY)}
    )


class Receiver:
    """``examples/receiver.py`` running on 127.0.0.1, read line by line."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "receiver.py"), str(self.port)],
            env={**os.environ, "GENHOOK_SIGNING_SECRET": SECRET},
            stdout=subprocess.PIPE,
            text=True,
        )
        wait_until(self._listening)

    def _listening(self) -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{self.port}/", timeout=0.5)
        except httpx.TransportError:
            return False
        return True

    def send(self, message: Message) -> tuple[int, str]:
        answer = httpx.post(
            f"http://127.0.0.1:{self.port}/hook", content=message.body, headers=message.headers
        )
        assert self.process.stdout is not None
        return answer.status_code, self.process.stdout.readline().strip()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.process.kill()
    running.process.wait()


def test_the_example_receiver_handles_a_fresh_webhook_once(receiver: Receiver) -> None:
    message = signed(msg_id="dlv_once")

    assert receiver.send(message) == (
        200,
        "verified video.generation.completed vgen_replay http://x/o",
    )
    # The same delivery again (a retry after a lost answer, or a replay within 5 minutes)
    assert receiver.send(message) == (200, "duplicate dlv_once already handled")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: signed(age=timedelta(minutes=6), msg_id="dlv_old"), "a timestamp more than 5"),
        (lambda: signed(age=-timedelta(minutes=6), msg_id="dlv_future"), "a timestamp more than"),
        (legacy_only, "missing headers"),
        (lambda: signed(secrets=[OTHER_SECRET], msg_id="dlv_forged"), "no webhook-signature"),
    ],
    ids=["captured-6-minutes-ago", "dated-in-the-future", "legacy-header-only", "other-secret"],
)
def test_the_example_receiver_refuses_replays_and_forgeries(
    receiver: Receiver, make: Callable[[], Message], reason: str
) -> None:
    # (made now, not when the tests were collected: the clock matters here)
    status, line = receiver.send(make())

    assert status == 401
    assert line.startswith("REFUSED") and reason in line


def test_the_example_receiver_refuses_a_changed_body_or_id(receiver: Receiver) -> None:
    message = signed(msg_id="dlv_tamper")
    tampered_body = Message(message.headers, BODY.replace(b"vgen_replay", b"vgen_other"))
    other_id = Message({**message.headers, "webhook-id": "dlv_other"})

    assert receiver.send(tampered_body)[0] == 401
    assert receiver.send(other_id)[0] == 401


def test_the_example_receiver_verifies_during_a_secret_rotation(receiver: Receiver) -> None:
    # genhook signs with the new secret first and the previous one during the overlap
    assert receiver.send(signed(secrets=[OTHER_SECRET, SECRET], msg_id="dlv_rot"))[0] == 200


README_FUNCTION = re.compile(r"```js\n(import crypto.*?function verifyGenhookWebhook.*?)```", re.S)


def test_the_readme_node_function_refuses_what_a_receiver_must(tmp_path: Path) -> None:
    # Given the README's Node.js verification function, exactly as printed
    match = README_FUNCTION.search((ROOT / "README.md").read_text())
    assert match, "the README shows verifyGenhookWebhook in a js block"
    cases = {
        "fresh": signed(msg_id="dlv_fresh"),
        "rotation": signed(secrets=[OTHER_SECRET, SECRET], msg_id="dlv_rotation"),
        "captured_6_minutes_ago": signed(age=timedelta(minutes=6)),
        "dated_in_the_future": signed(age=-timedelta(minutes=6)),
        "legacy_header_only": legacy_only(),
        "other_secret": signed(secrets=[OTHER_SECRET]),
        "changed_body": Message(signed().headers, BODY + b" "),
    }
    script = tmp_path / "verify.mjs"
    script.write_text(
        match.group(1)
        + "\nconst cases = JSON.parse(process.argv[2]);\nconst out = {};\n"
        + "for (const [name, c] of Object.entries(cases)) {\n"
        + "  const headers = Object.fromEntries(Object.entries(c.headers).map(([k, v]) => "
        + "[k.toLowerCase(), v]));\n"
        + f"  out[name] = verifyGenhookWebhook(Buffer.from(c.body, 'utf8'), headers, {SECRET!r});\n"
        + "}\nconsole.log(JSON.stringify(out));\n"
    )
    payload = {n: {"headers": m.headers, "body": m.body.decode()} for n, m in cases.items()}

    # When it checks each message
    run = subprocess.run(
        ["node", str(script), json.dumps(payload)], capture_output=True, text=True, check=True
    )

    # Then only the fresh ones verify, giving the id to dedup on
    assert json.loads(run.stdout) == {
        "fresh": "dlv_fresh",
        "rotation": "dlv_rotation",
        "captured_6_minutes_ago": None,
        "dated_in_the_future": None,
        "legacy_header_only": None,
        "other_secret": None,
        "changed_body": None,
    }
