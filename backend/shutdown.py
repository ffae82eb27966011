"""What a stopping worker does with the steps it could not finish in time.

On SIGTERM Dramatiq's own shutdown stops taking messages, lets the steps already running
finish for ``--worker-shutdown-timeout`` (``GENHOOK_WORKER_SHUTDOWN_TIMEOUT_SECONDS``), and
puts back on their queues the messages it had fetched but not started and the delayed ones
it held in memory. A step still running when that time is up would keep its message
unacknowledged until the broker notices the worker is gone (a minute without heartbeat, then
only at a random maintenance pass) and its Redis lock held until the lock's TTL.
:class:`RequeueUnfinished` hands both back at once instead: each such message goes to the
end of its queue for another worker, and the locks its step holds are released. The process
exits right after, cutting the step short; every state change is a compare-and-set on its
row, so a step cut short changes nothing half-way (a webhook its receiver accepted just
before may come again, with the same ``webhook-id``).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any

import dramatiq
import redis
from dramatiq.broker import Broker, MessageProxy
from dramatiq.middleware import Middleware

from backend.locks import release_held_by

log = logging.getLogger(__name__)


class RequeueUnfinished(Middleware):
    """Remembers which message each worker thread is running; on worker shutdown, requeues
    the ones still running and releases their threads' locks."""

    def __init__(self) -> None:
        self._running: dict[int, MessageProxy] = {}
        self._guard = threading.Lock()

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        with self._guard:
            self._running[threading.get_ident()] = message

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        with self._guard:
            self._running.pop(threading.get_ident(), None)

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        self.after_process_message(broker, message)

    def after_worker_shutdown(self, broker: Broker, worker: dramatiq.Worker) -> None:
        """Runs once the worker threads were given their time, before the process exits."""
        with self._guard:
            unfinished, self._running = self._running, {}
        if not unfinished:
            return
        by_queue: defaultdict[str, list[MessageProxy]] = defaultdict(list)
        for message in unfinished.values():
            by_queue[message.queue_name].append(message)
        for queue_name, messages in by_queue.items():
            consumer = worker.consumers.get(queue_name)
            names = ", ".join(f"{m.actor_name}{tuple(m.args)}" for m in messages)
            try:
                if consumer is None:
                    raise dramatiq.errors.QueueNotFound(queue_name)
                consumer.requeue_messages(messages)
            except (redis.RedisError, dramatiq.errors.DramatiqError) as exc:
                log.warning(
                    "stopping before %s finished; could not requeue it (%s): the broker "
                    "requeues it once this worker's heartbeat is a minute old",
                    names,
                    exc,
                )
                continue
            log.warning("stopping before %s finished; requeued for another worker", names)
        released = release_held_by(unfinished)
        if released:
            log.info("released %d lock(s) held by the unfinished steps", released)
