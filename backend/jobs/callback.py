"""A provider's callback: verify it, then poll the task at once.

Callbacks are hints. The URL's token (one per task, only its hash stored) says which task
the callback may be about; the adapter checks the provider's signature where there is one;
then genhook polls the provider itself rather than trusting the body, which for most
providers is unsigned. A bad token or signature, or a body about another task, is a 401
and changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from backend.context import Context
from backend.errors import Unauthorized
from backend.providers.base import CallbackRejected, raw_task_id
from backend.store import provider_tasks as tasks_store
from backend.store.provider_tasks import TaskState

log = logging.getLogger(__name__)


def receive_callback(
    ctx: Context, provider_name: str, token: str, headers: Mapping[str, str], raw_body: bytes
) -> dict[str, Any] | None:
    """Returns the JSON the provider must get back (a handshake), or None for a plain 2xx."""
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    with ctx.store.begin() as conn:
        task = tasks_store.get_by_callback_token_hash(conn, token_hash)
    provider = ctx.providers.get(provider_name)
    if task is None or provider is None or task.provider != provider_name:
        raise Unauthorized("this callback URL is not valid")
    try:
        hint = provider.callback(headers, raw_body)
    except CallbackRejected as exc:
        log.warning("callback for job %s from %s refused: %s", task.job_id, provider_name, exc)
        raise Unauthorized(f"the callback was refused: {exc}") from None
    if hint.reply is not None:
        return hint.reply
    if task.task_id is not None and hint.task_id != raw_task_id(task.task_id):
        log.warning("callback for job %s names another task: %s", task.job_id, hint.task_id)
        raise Unauthorized("the callback is about another task")
    if task.state in (TaskState.RUNNING, TaskState.SUBMITTING):
        # While still submitting, the first poll right after submission catches up anyway.
        ctx.queue.poll_job_now(task.job_id)
    return None
