"""Webhook URLs often carry a token in their query: logs never show it (issue 11, #13)."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from backend.accounts import NewAccount
from backend.broker import build_broker
from backend.context import Context
from backend.jobs.create import create_generation
from backend.jobs.deliver import deliver
from backend.jobs.finish import fail
from backend.logging_setup import redacted_url
from backend.queue import Queue
from backend.schemas.generations import GenerationCreate
from backend.store import deliveries as deliveries_store
from tests.support.receiver import WebhookReceiver


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example.com/in?token=s3cr3t", "https://hooks.example.com/in?…"),
        ("https://user:pw@hooks.example.com:8443/a/b", "https://hooks.example.com:8443/a/b"),
        ("http://[::1]:9/h?k=v#frag", "http://[::1]:9/h?…"),
        ("https://hooks.example.com/plain", "https://hooks.example.com/plain"),
    ],
)
def test_a_url_in_a_log_line_keeps_where_and_drops_secrets(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


def test_delivery_log_lines_never_show_the_query_token(
    ctx: Context,
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a failed job whose webhook URL carries a token (its message is not enqueued)
    _, url = receiver
    lossy = dataclasses.replace(ctx, queue=Queue(build_broker("redis://127.0.0.1:1/0")))
    request = GenerationCreate(
        model="kling-v3", prompt="p", webhook_url=f"{url}/hooks?token=s3cr3t"
    )
    job = create_generation(lossy, account.account.id, request)
    fail(lossy, job.id, code="test", message="failed for the test")
    with ctx.store.begin() as conn:
        (delivery,) = deliveries_store.deliveries_for_job(conn, job.id)

    # When it is delivered, with genhook's INFO lines captured
    with caplog.at_level(logging.INFO):
        deliver(ctx, delivery.id)

    # Then the line says where it went, and not the token
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "backend.jobs.deliver" and delivery.id in r.getMessage()
    ]
    assert lines and all("/hooks?…" in line for line in lines)
    assert "s3cr3t" not in caplog.text
