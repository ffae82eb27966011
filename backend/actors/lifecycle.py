"""The actors: thin shells that hand each message to its step in ``backend.jobs``.

Their names and queues are the contract ``backend/queue.py`` sends to.
"""

from __future__ import annotations

import dramatiq

from backend import queue
from backend.context import get_context
from backend.jobs.deliver import deliver
from backend.jobs.poll import poll, poll_now
from backend.jobs.submit import submit
from backend.mail import outbox


@dramatiq.actor(actor_name=queue.SUBMIT_JOB, queue_name=queue.JOBS_QUEUE)
def submit_job(job_id: str, busy: int = 0) -> None:
    submit(get_context(), job_id, busy=busy)


@dramatiq.actor(actor_name=queue.POLL_JOB, queue_name=queue.JOBS_QUEUE)
def poll_job(job_id: str, poll_token: str, busy: int = 0) -> None:
    poll(get_context(), job_id, poll_token, busy=busy)


@dramatiq.actor(actor_name=queue.POLL_JOB_NOW, queue_name=queue.JOBS_QUEUE)
def poll_job_now(job_id: str, busy: int = 0) -> None:
    poll_now(get_context(), job_id, busy=busy)


@dramatiq.actor(actor_name=queue.DELIVER_WEBHOOK, queue_name=queue.WEBHOOKS_QUEUE)
def deliver_webhook(delivery_id: str, busy: int = 0, probe: bool = False) -> None:
    deliver(get_context(), delivery_id, busy=busy, probe=probe)


@dramatiq.actor(actor_name=queue.SEND_SIGNUP_MAIL, queue_name=queue.JOBS_QUEUE)
def send_signup_mail(mail_id: str) -> None:
    outbox.send_signup_mail(get_context(), mail_id)
