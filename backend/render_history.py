"""How long renders really take, per model and route, remembered in Redis.

The catalog's ``typical_render_seconds`` is a guess made once; real render times drift
with the provider's load and differ between routes of the same model. Every finished
render folds its duration into a moving average for its (model, route), and ETAs and poll
delays (``backend/jobs/eta.py``) start from that average instead of the guess.

Best effort like the status cache: when Redis is away a sample is lost and the estimate
falls back to the catalog's, never an error. The key and its TTL are described in
``backend/redis_keys.py``; the update is one atomic Lua script (``render_history.lua``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import redis

from backend import redis_keys

log = logging.getLogger(__name__)

#: Weight of a new sample in the moving average once warmed up (about the last 9 renders).
ALPHA = 0.2
#: The first samples form a plain running mean and are never clamped as outliers.
WARMUP_SAMPLES = 5
#: After warm-up a sample is clamped to mean +- max(CLAMP_MADS * deviation, CLAMP_FRACTION *
#: mean): one tenfold outlier nudges the average, a lasting slowdown still takes over in a
#: few renders.
CLAMP_MADS = 3.0
CLAMP_FRACTION = 0.5
#: The catalog's typical time counts as this many samples, so the first few real renders
#: blend with it instead of replacing it.
PRIOR_SAMPLES = 3
#: Samples outside (0, MAX_SAMPLE_SECONDS] are clock or bookkeeping errors and are ignored.
MAX_SAMPLE_SECONDS = 24 * 3600.0
#: A process reuses what it read of a route's history this long: every poll of every job
#: needs it, and it moves by a fifth of a render's time per render at most.
READ_CACHE_SECONDS = 5.0

_SCRIPT = resources.files("backend").joinpath("render_history.lua").read_text()


class RenderHistory:
    """The moving history of render durations, one Redis hash per (model, route)."""

    def __init__(self, client: redis.Redis, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self._record = client.register_script(_SCRIPT)
        self._outage_logged = False
        self._clock = clock
        #: Redis key -> (read at, mean, samples), for ``READ_CACHE_SECONDS``.
        self._read: dict[str, tuple[float, Any, Any]] = {}
        self._read_guard = threading.Lock()

    def record(self, model: str, route_key: str, seconds: float) -> None:
        """Fold one finished render's wall-clock ``seconds`` into the history.

        ``route_key`` names the route as ``"{provider}/{provider_model}"``.
        """
        if not (math.isfinite(seconds) and 0 < seconds <= MAX_SAMPLE_SECONDS):
            log.debug("render time %r for %s on %s ignored", seconds, model, route_key)
            return
        key = redis_keys.render_history(model, route_key)
        with self._read_guard:
            self._read.pop(key, None)  # this process sees its own samples at once
        args = [seconds, ALPHA, WARMUP_SAMPLES, CLAMP_MADS, CLAMP_FRACTION]
        try:
            self._record(keys=[key], args=[*args, redis_keys.RENDER_HISTORY_TTL_SECONDS])
        except redis.RedisError as exc:
            self._outage(f"render time of {model} on {route_key} not recorded", exc)
            return
        self._outage_logged = False

    def expected_seconds(self, model: str, route_key: str, typical_seconds: float) -> float:
        """How long a render of ``model`` on this route is expected to take, in seconds.

        The catalog's ``typical_seconds`` until renders were seen, then the moving average
        blended with it as a prior worth ``PRIOR_SAMPLES`` renders.
        """
        key = redis_keys.render_history(model, route_key)
        now = self._clock()
        with self._read_guard:
            cached = self._read.get(key)
        if cached is not None and now - cached[0] < READ_CACHE_SECONDS:
            _, mean, count = cached
        else:
            try:
                mean, count = self.client.hmget(key, ["mean", "n"])
            except redis.RedisError as exc:
                self._outage(f"render history of {model} on {route_key} unavailable", exc)
                return typical_seconds
            self._outage_logged = False
            with self._read_guard:
                self._read[key] = (now, mean, count)
        if mean is None or count is None:
            return typical_seconds
        samples = int(count)
        return (PRIOR_SAMPLES * typical_seconds + samples * float(mean)) / (PRIOR_SAMPLES + samples)

    def _outage(self, what: str, exc: redis.RedisError) -> None:
        """Warn once per outage; every poll would otherwise repeat it."""
        level = logging.DEBUG if self._outage_logged else logging.WARNING
        log.log(level, "%s (%s); using the catalog's typical times", what, exc)
        self._outage_logged = True
