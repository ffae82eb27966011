"""Push callbacks from the simulated farm, shaped and signed by each render's dialect.

Renders have no worker behind them (their status is derived from the clock), so a small
thread watches the renders that asked for callbacks and, whenever one's status changes,
asks its dialect what the provider would POST (or nothing: fal only calls at the end). The
thread runs only while something is watched, so simulators made by tests cost nothing idle.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from backend.simulator.farm import Phase, RenderFarm, RenderSnapshot

log = logging.getLogger(__name__)

#: How often watched renders are looked at.
TICK_SECONDS = 0.05
#: One callback POST may take this long.
CALLBACK_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class OutgoingCallback:
    """One POST a provider would make: where, with which headers and exact bytes."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SentCallback:
    """What the simulator sent, for tests to inspect (``GET /_sim/callbacks``)."""

    render_id: str
    dialect: str
    status: str
    url: str
    response_status: int | None
    error: str | None


#: Given a render that changed and the status it had before, the dialect's callback for
#: it, or None when its provider would not call for this change.
CallbackBuilder = Callable[[RenderSnapshot, Phase], OutgoingCallback | None]


class CallbackDispatcher:
    def __init__(self, farm: RenderFarm, *, tick_seconds: float = TICK_SECONDS) -> None:
        self._farm = farm
        self._tick_seconds = tick_seconds
        self._builders: dict[str, CallbackBuilder] = {}
        self._watched: dict[str, Phase] = {}
        self._sent: list[SentCallback] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, dialect: str, builder: CallbackBuilder) -> None:
        self._builders[dialect] = builder

    def watch(self, render_id: str) -> None:
        """Follow a render that was created (queued) with a callback URL: its creation was
        answered synchronously, so only the changes after it are called back."""
        with self._lock:
            self._watched.setdefault(render_id, Phase.QUEUED)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sim-callbacks", daemon=True)
                self._thread.start()

    def sent(self) -> list[SentCallback]:
        with self._lock:
            return list(self._sent)

    def _run(self) -> None:
        with httpx.Client(timeout=CALLBACK_TIMEOUT_SECONDS, trust_env=False) as client:
            while True:
                self._tick(client)
                with self._lock:
                    if not self._watched:
                        self._thread = None
                        return
                threading.Event().wait(self._tick_seconds)

    def _tick(self, client: httpx.Client) -> None:
        with self._lock:
            watched = dict(self._watched)
        for render_id, previous in watched.items():
            snapshot = self._farm.get(render_id)
            if snapshot is None:  # the farm was reset
                self._forget(render_id)
                continue
            if snapshot.status == previous:
                continue
            builder = self._builders.get(snapshot.spec.dialect)
            outgoing = builder(snapshot, previous) if builder else None
            if outgoing is not None:
                self._send(client, snapshot, outgoing)
            with self._lock:
                if snapshot.status in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED):
                    self._watched.pop(render_id, None)
                elif render_id in self._watched:
                    self._watched[render_id] = snapshot.status

    def _send(self, client: httpx.Client, snapshot: RenderSnapshot, out: OutgoingCallback) -> None:
        status: int | None = None
        error: str | None = None
        try:
            response = client.post(
                out.url,
                content=out.body,
                headers={"Content-Type": "application/json", **out.headers},
            )
            status = response.status_code
        except httpx.HTTPError as exc:
            error = str(exc) or type(exc).__name__
            log.info("callback for %s to %s failed: %s", snapshot.id, out.url, error)
        with self._lock:
            self._sent.append(
                SentCallback(
                    snapshot.id,
                    snapshot.spec.dialect,
                    snapshot.status.value,
                    out.url,
                    status,
                    error,
                )
            )

    def _forget(self, render_id: str) -> None:
        with self._lock:
            self._watched.pop(render_id, None)
