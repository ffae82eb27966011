"""The Dramatiq broker every process shares: Redis, with genhook's retry policy."""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Retries

from backend.redis_client import connect
from backend.shutdown import RequeueUnfinished

#: Retries of an actor that raised (a database hiccup, say): few and quick, because the
#: recovery sweep covers anything that still fails.
MAX_ACTOR_RETRIES = 5
MIN_RETRY_BACKOFF_MS = 1_000
MAX_RETRY_BACKOFF_MS = 30_000


def build_broker(redis_url: str) -> RedisBroker:
    broker = RedisBroker(client=connect(redis_url))
    for middleware in list(broker.middleware):
        if isinstance(middleware, Retries):
            broker.middleware.remove(middleware)
    broker.add_middleware(
        Retries(
            max_retries=MAX_ACTOR_RETRIES,
            min_backoff=MIN_RETRY_BACKOFF_MS,
            max_backoff=MAX_RETRY_BACKOFF_MS,
        )
    )
    broker.add_middleware(RequeueUnfinished())
    return broker


log = logging.getLogger(__name__)


class RecoverOnBoot(dramatiq.Middleware):
    """A worker that starts (after a crash, a deploy, a restart) runs a recovery pass at
    once, rather than leaving its predecessor's lost messages to the scheduler's next one."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        threading.Thread(target=_recover_at_boot, name="genhook-boot-recovery", daemon=True).start()


def _recover_at_boot() -> None:
    from backend.context import get_context
    from backend.scheduler import recover_now

    ctx = get_context()
    if not ctx.settings.recovery_on_worker_start:
        return
    try:
        recover_now(ctx)
    except Exception:  # never take the worker down: the scheduler's passes still run
        log.exception("recovery pass at worker start failed")


def install_broker(redis_url: str) -> RedisBroker:
    """Build the broker and make it Dramatiq's global one, before any actor is declared."""
    broker = build_broker(redis_url)
    broker.add_middleware(RecoverOnBoot())
    dramatiq.set_broker(broker)
    return broker
