"""The Redis status cache behind ``GET /v1/video/generations/{id}``.

Best effort by design: a Redis outage makes reads fall back to the database and writes
a no-op, never an error. Keys and TTLs are described in ``backend/redis_keys.py``.

Why GET never shows a state much older than the database's, whoever dies when:

- every change of a job's row drops its entry before the commit (``invalidate``, called
  by the store with the row locked), and the writer caches the new state after it
  (``put``, which never replaces a newer entry);
- a writer that dies between the two leaves no entry, so the next read goes to the
  database; a reader that filled the entry from the state just before such a commit, or a
  Redis restored from an old snapshot, leaves a running job's entry at most
  ``revalidate_seconds`` old before a read checks it against the database again. A
  finished job's entry is only ever written after its commit, and a finished job does not
  change any more.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from importlib import resources

import redis

from backend import redis_keys
from backend.jobs.view import to_generation, with_live_fields
from backend.schemas.generations import Generation
from backend.store.jobs import JobRecord

log = logging.getLogger(__name__)

_PUT_IF_NEWER = resources.files("backend").joinpath("status_cache.lua").read_text()

#: (job id, link key, now) -> a signed link to the job's kept video.
OutputSigner = Callable[[str, str, datetime], str]


class StatusCache:
    def __init__(
        self,
        client: redis.Redis,
        *,
        terminal_ttl_seconds: int,
        revalidate_seconds: float = 5.0,
        sign_output: OutputSigner | None = None,
    ) -> None:
        self.client = client
        self.terminal_ttl_seconds = terminal_ttl_seconds
        self.revalidate_seconds = revalidate_seconds
        self._put_if_newer = client.register_script(_PUT_IF_NEWER)
        #: Re-signs a kept video's link on every read, so a client never gets a stale one.
        self.sign_output = sign_output

    def put(self, job: JobRecord, now: datetime) -> None:
        """Cache ``job`` unless a newer state of it is cached already (writers race)."""
        version = int(job.updated_at.timestamp() * 1_000_000)
        entry = {
            "account_id": job.account_id,
            "version": version,
            "cached_at": now.timestamp(),
            "generation": to_generation(job, now).model_dump(mode="json"),
            "output_link_key": _live_link_key(job),
        }
        ttl = (
            self.terminal_ttl_seconds
            if job.status.is_terminal
            else redis_keys.ACTIVE_JOB_TTL_SECONDS
        )
        try:
            self._put_if_newer(
                keys=[redis_keys.job_status(job.id)], args=[json.dumps(entry), version, ttl]
            )
        except redis.RedisError as exc:
            log.warning("status cache write for %s failed: %s", job.id, exc)

    def invalidate(self, job_id: str) -> None:
        """Drop the job's entry: its row is about to change (see the module docstring)."""
        try:
            self.client.delete(redis_keys.job_status(job_id))
        except redis.RedisError as exc:
            log.warning("status cache invalidation for %s failed: %s", job_id, exc)

    def get(self, account_id: str, job_id: str, now: datetime) -> Generation | None:
        """The cached generation if this account owns it; ``None`` on a miss or outage, and
        for a running job's entry older than ``revalidate_seconds`` (read it again)."""
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
        generation = Generation.model_validate(entry["generation"])
        if not generation.status.is_terminal and _older_than(entry, now, self.revalidate_seconds):
            return None
        generation = with_live_fields(generation, now)
        link_key = entry.get("output_link_key")
        if link_key and self.sign_output is not None:
            fresh = self.sign_output(job_id, link_key, now)
            generation = generation.model_copy(update={"output_url": fresh})
        return generation

    def generation(self, job: JobRecord, now: datetime) -> Generation:
        """``job`` as clients see it now, its output link freshly signed."""
        generation = to_generation(job, now)
        link_key = _live_link_key(job)
        if link_key and self.sign_output is not None:
            fresh = self.sign_output(job.id, link_key, now)
            generation = generation.model_copy(update={"output_url": fresh})
        return generation


def _older_than(entry: dict[str, object], now: datetime, seconds: float) -> bool:
    cached_at = entry.get("cached_at")
    if not isinstance(cached_at, int | float):
        return True  # written by an older genhook: check it
    return now.timestamp() - cached_at > seconds


def _live_link_key(job: JobRecord) -> str | None:
    """The key signing links to the job's kept video (still signed once retention deleted
    it, so the link answers 410 Gone rather than a puzzling 403)."""
    return job.output_link_key if job.output_key is not None else None
