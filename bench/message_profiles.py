"""``--profile`` of ``bench/deliver.py``: a cProfile of every message, per worker thread.

Why it exists: ``python -m cProfile`` would only see the main thread, which just waits while
the worker's threads deliver. This Dramatiq middleware profiles each message in the thread
that processes it, with one profile per thread, merged into one pstats at the end.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy

#: What ``--profile`` measures in each worker thread.
PROFILE_CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


class MessageProfiles(dramatiq.Middleware):
    """A cProfile of every message, taken in the worker thread that processes it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self.profiles: list[cProfile.Profile] = []

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if not hasattr(self._local, "profile"):
            self._local.profile = cProfile.Profile(self._clock)
            with self._lock:
                self.profiles.append(self._local.profile)
        self._local.profile.enable()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        self._pause()

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._pause()

    def _pause(self) -> None:
        profile = getattr(self._local, "profile", None)
        if profile is not None:
            profile.disable()

    def stats(self, stream: io.StringIO) -> pstats.Stats:
        return pstats.Stats(*self.profiles, stream=stream)
