"""The Redis status cache behind ``GET /v1/video/generations/{id}``.

Best effort by design: a Redis outage makes reads fall back to the database and writes
a no-op, never an error. Keys and TTLs are described in ``backend/redis_keys.py``.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

import redis

from backend import redis_keys
from backend.jobs.view import to_generation, with_live_fields
from backend.schemas.generations import Generation
from backend.store.jobs import JobRecord

log = logging.getLogger(__name__)


class StatusCache:
    def __init__(self, client: redis.Redis, *, terminal_ttl_seconds: int) -> None:
        self.client = client
        self.terminal_ttl_seconds = terminal_ttl_seconds

    def put(self, job: JobRecord, now: datetime) -> None:
        entry = {
            "account_id": job.account_id,
            "generation": to_generation(job, now).model_dump(mode="json"),
        }
        ttl = (
            self.terminal_ttl_seconds
            if job.status.is_terminal
            else redis_keys.ACTIVE_JOB_TTL_SECONDS
        )
        try:
            self.client.set(redis_keys.job_status(job.id), json.dumps(entry), ex=ttl)
        except redis.RedisError as exc:
            log.warning("status cache write for %s failed: %s", job.id, exc)

    def get(self, account_id: str, job_id: str, now: datetime) -> Generation | None:
        """The cached generation if this account owns it; ``None`` on a miss or outage."""
        try:
            raw = self.client.get(redis_keys.job_status(job_id))
        except redis.RedisError as exc:
            log.warning("status cache read for %s failed: %s", job_id, exc)
            return None
        if raw is None:
            return None
        entry = json.loads(raw)
        if entry["account_id"] != account_id:
            return None
        return with_live_fields(Generation.model_validate(entry["generation"]), now)
