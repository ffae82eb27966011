"""Enqueue job-lifecycle messages by actor name.

Domain code and the API enqueue through this module, so they never import the actors
(which would import the domain code back). Names here must match ``backend/actors``.
"""

from __future__ import annotations

import logging

import dramatiq
import redis

log = logging.getLogger(__name__)

#: Queues: rendering work and webhook delivery never wait behind each other.
JOBS_QUEUE = "jobs"
WEBHOOKS_QUEUE = "webhooks"

SUBMIT_JOB = "submit_job"
POLL_JOB = "poll_job"
POLL_JOB_NOW = "poll_job_now"
DELIVER_WEBHOOK = "deliver_webhook"
SEND_SIGNUP_MAIL = "send_signup_mail"


class Queue:
    """Sends lifecycle messages through a Dramatiq broker."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    # ``busy``: how many times the message already found its job or delivery locked (it
    # comes back later each time: ``backend.locks.busy_retry_delay``).

    def submit_job(self, job_id: str, *, delay_seconds: float = 0, busy: int = 0) -> bool:
        return self._send(JOBS_QUEUE, SUBMIT_JOB, (job_id,), delay_seconds, busy)

    def poll_job(
        self, job_id: str, poll_token: str, *, delay_seconds: float, busy: int = 0
    ) -> bool:
        return self._send(JOBS_QUEUE, POLL_JOB, (job_id, poll_token), delay_seconds, busy)

    def poll_job_now(self, job_id: str, *, delay_seconds: float = 0, busy: int = 0) -> bool:
        """A poll out of turn, because the provider called back."""
        return self._send(JOBS_QUEUE, POLL_JOB_NOW, (job_id,), delay_seconds, busy)

    def deliver_webhook(
        self, delivery_id: str, *, delay_seconds: float = 0, busy: int = 0, probe: bool = False
    ) -> bool:
        """``probe``: an early attempt, to see whether the destination answers again."""
        extra: dict[str, object] = {"probe": True} if probe else {}
        return self._send(
            WEBHOOKS_QUEUE, DELIVER_WEBHOOK, (delivery_id,), delay_seconds, busy, extra
        )

    def send_signup_mail(self, mail_id: str, *, delay_seconds: float = 0) -> bool:
        """A signup mail from the outbox (on the jobs queue, which every worker consumes:
        signups are rare and each attempt is bounded by ``smtp_timeout_seconds``)."""
        return self._send(JOBS_QUEUE, SEND_SIGNUP_MAIL, (mail_id,), delay_seconds)

    def _send(
        self,
        queue: str,
        actor: str,
        args: tuple[str, ...],
        delay_seconds: float = 0,
        busy: int = 0,
        extra: dict[str, object] | None = None,
    ) -> bool:
        """Enqueue; on a broker outage log and return ``False``: the database still holds
        the work, and the recovery sweep re-enqueues it."""
        message: dramatiq.Message = dramatiq.Message(
            queue_name=queue,
            actor_name=actor,
            args=args,
            kwargs={**({"busy": busy} if busy else {}), **(extra or {})},
            options={},
        )
        delay_ms = int(delay_seconds * 1000) or None
        try:
            self.broker.enqueue(message, delay=delay_ms)
        except (redis.RedisError, dramatiq.errors.BrokerConnectionError) as exc:
            log.warning("could not enqueue %s%s (%s); the sweep will retry", actor, args, exc)
            return False
        return True
