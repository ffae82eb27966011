"""In-memory state of the simulated render farm, kept free of HTTP so it is easy to reason about.

A render has no worker behind it: its status is *derived* from how much time has passed since it
was created, measured with an injectable clock. That keeps the simulator deterministic under test
(advance a fake clock) and free of background threads in production (gunicorn workers stay
simple). Faults are a FIFO list of rules that tests and demos push in to make the farm misbehave
on purpose, the way real providers do: throttling, outages and renders that die half-way.
"""

from __future__ import annotations

import bisect
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum


class Phase(StrEnum):
    """Every status a render can report, in the order a healthy render moves through them."""

    QUEUED = "queued"
    PREPARING = "preparing"
    RENDERING = "rendering"
    ENCODING = "encoding"
    FINISHING = "finishing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


# When each phase starts, as a fraction of the total render time. A render sits in a phase until
# the next one starts; after the last in-progress phase it has succeeded.
PHASE_STARTS: tuple[tuple[Phase, float], ...] = (
    (Phase.QUEUED, 0.0),
    (Phase.PREPARING, 0.10),
    (Phase.RENDERING, 0.25),
    (Phase.ENCODING, 0.75),
    (Phase.FINISHING, 0.90),
    (Phase.SUCCEEDED, 1.0),
)

# Phases a render can be made to fail in: anything before it is done.
FAILABLE_PHASES: tuple[Phase, ...] = tuple(phase for phase, _ in PHASE_STARTS[:-1])

_PHASE_ORDER: dict[Phase, int] = {phase: index for index, (phase, _) in enumerate(PHASE_STARTS)}
_PHASE_START: dict[Phase, float] = dict(PHASE_STARTS)


class FaultKind(StrEnum):
    """What went wrong, in words every dialect translates into its provider's own answer
    (Kling's 429 with code 1302, fal's ``COMPLETED`` with an ``error``, Runway's ``THROTTLED``).
    """

    RATE_LIMITED = "rate_limited"
    CAPACITY = "capacity"
    QUOTA = "quota"
    AUTH = "auth"
    SERVER_ERROR = "server_error"
    UNAVAILABLE = "unavailable"
    BAD_REQUEST = "bad_request"
    CONTENT_POLICY = "content_policy"
    #: Answer nothing for ``hang_seconds``; nothing is created.
    HANG = "hang"
    #: Create the task, then answer nothing for ``hang_seconds`` (a lost answer).
    HANG_AFTER_CREATE = "hang_after_create"
    #: For render faults: the provider's generic internal failure.
    INTERNAL = "internal"


class FaultTarget(StrEnum):
    """What a fault rule hits: a submit request, a poll request, the render itself, or the
    download of its video."""

    SUBMIT = "submit"
    POLL = "poll"
    RENDER = "render"
    #: The download of a finished render's video (a CDN hiccup, an expired link).
    DOWNLOAD = "download"


@dataclass(frozen=True)
class RenderSpec:
    """What the client asked for; the farm ignores it apart from the model, but echoes it back."""

    model: str
    prompt: str
    duration_seconds: int
    aspect_ratio: str
    #: What the client sent as first and last frame, summarised ("url:…", "base64:N bytes").
    image: str | None = None
    end_image: str | None = None
    #: Which wire dialect created it ("native", "kling", …) and where it wants callbacks.
    dialect: str = "native"
    callback_url: str | None = None
    #: ``scheme://host`` the client used, so output URLs and callbacks name a reachable host.
    origin: str = ""
    #: The client's own id for the task, echoed back (Kling's ``external_task_id``).
    reference: str | None = None


@dataclass(frozen=True)
class RenderError:
    """Why a render failed, in the provider's own words."""

    code: str
    message: str


@dataclass(frozen=True)
class FaultRule:
    """One entry of the fault list; `times` says how many matching events it still spoils.

    `status` and `retry_after` only matter for submit/poll faults, `at_phase` only for render
    faults. A rule with a `model` only matches events for that model, one with a `dialect`
    only requests in that dialect. `kind` lets a dialect answer as its provider would; a
    rule without one is answered with the given `status` and `code`.
    """

    on: FaultTarget
    code: str
    times: int = 1
    status: int | None = None
    retry_after: int | None = None
    model: str | None = None
    at_phase: Phase = Phase.RENDERING
    message: str | None = None
    kind: FaultKind | None = None
    dialect: str | None = None
    hang_seconds: float = 30.0

    def matches(self, on: FaultTarget, model: str | None, dialect: str = "native") -> bool:
        return (
            self.on is on
            and (self.model is None or self.model == model)
            and (self.dialect is None or self.dialect == dialect)
        )

    def describe(self) -> str:
        """The error message shown to clients: the rule's own, or a recognisable default."""
        return self.message or f"Simulated fault: {self.code}"


@dataclass(frozen=True)
class RenderSnapshot:
    """A render as seen at one instant; what the HTTP layer turns into JSON."""

    id: str
    spec: RenderSpec
    status: Phase
    progress: float
    eta_seconds: float
    error: RenderError | None
    created_at: datetime
    #: Renders queued ahead of this one (0 = next); None once it has started.
    queue_position: int | None = None
    #: The rule that doomed it, for dialects that phrase failures by kind.
    fault_kind: FaultKind | None = None


@dataclass(frozen=True)
class Stats:
    """How many submit and poll requests the farm has answered, faulted ones included."""

    submits: int
    polls: int


@dataclass
class _Render:
    id: str
    spec: RenderSpec
    created_at: datetime
    started_at: float
    doomed: tuple[Phase, RenderError, FaultKind | None] | None = None
    canceled_at: float | None = None
    #: Position in creation order (an index into ``_State.started``).
    seq: int = 0


@dataclass
class _State:
    renders: dict[str, _Render] = field(default_factory=dict)
    by_idempotency_key: dict[str, str] = field(default_factory=dict)
    rules: list[FaultRule] = field(default_factory=list)
    #: Start time of every render in creation order, for queue positions.
    started: list[float] = field(default_factory=list)
    submits: int = 0
    polls: int = 0


def new_render_id() -> str:
    return f"rnd_{secrets.token_hex(12)}"


class RenderFarm:
    """The whole farm: renders, idempotency keys, fault rules and counters behind one lock.

    The lock is coarse on purpose: every operation is a few dictionary lookups, and the
    simulator runs under a threaded server (and gunicorn threads) where correctness matters
    more than throughput.
    """

    def __init__(self, *, render_seconds: float, clock: Callable[[], float]) -> None:
        if render_seconds < 0:
            raise ValueError("render_seconds must not be negative")
        self._render_seconds = render_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._state = _State()

    # -- renders ----------------------------------------------------------------------------

    def submit(
        self, spec: RenderSpec, idempotency_key: str | None = None
    ) -> tuple[RenderSnapshot, bool]:
        """Create a render, or find the one already created under `idempotency_key`.

        Returns the snapshot and whether a new render was created. A fresh render is always
        reported as queued, even when render_seconds is 0: a provider acknowledges the job
        before doing any work, and clients must poll to see it finish.
        """
        with self._lock:
            state = self._state
            if idempotency_key is not None and idempotency_key in state.by_idempotency_key:
                existing = state.renders[state.by_idempotency_key[idempotency_key]]
                return self._snapshot(existing), False
            render = _Render(
                id=new_render_id(),
                spec=spec,
                created_at=datetime.now(UTC),
                started_at=self._clock(),
                doomed=self._take_render_fault(spec.model, spec.dialect),
                seq=len(state.started),
            )
            state.started.append(render.started_at)
            state.renders[render.id] = render
            if idempotency_key is not None:
                state.by_idempotency_key[idempotency_key] = render.id
            acknowledged = replace(
                self._snapshot(render),
                status=Phase.QUEUED,
                progress=0.0,
                eta_seconds=float(self._render_seconds),
                error=None,
            )
            return acknowledged, True

    def get(self, render_id: str) -> RenderSnapshot | None:
        with self._lock:
            render = self._state.renders.get(render_id)
            return None if render is None else self._snapshot(render)

    def find(self, idempotency_key: str) -> RenderSnapshot | None:
        """The render created under ``idempotency_key``, if any."""
        with self._lock:
            render_id = self._state.by_idempotency_key.get(idempotency_key)
            return None if render_id is None else self._snapshot(self._state.renders[render_id])

    def cancel(self, render_id: str) -> RenderSnapshot | None:
        """Stop a render that has not ended; an ended one is returned as it is."""
        with self._lock:
            render = self._state.renders.get(render_id)
            if render is None:
                return None
            if render.canceled_at is None and not _ended(self._snapshot(render).status):
                render.canceled_at = self._clock()
            return self._snapshot(render)

    def renders(self) -> list[RenderSnapshot]:
        """All renders, oldest first."""
        with self._lock:
            return [self._snapshot(render) for render in self._state.renders.values()]

    # -- faults -----------------------------------------------------------------------------

    def add_fault(self, rule: FaultRule) -> None:
        if rule.times < 1:
            raise ValueError("a fault rule must apply at least once")
        if rule.on is not FaultTarget.RENDER and rule.status is None and rule.kind is None:
            raise ValueError("submit and poll faults need an HTTP status or a kind")
        if rule.at_phase not in FAILABLE_PHASES:
            raise ValueError(f"a render cannot fail at phase {rule.at_phase!s}")
        with self._lock:
            self._state.rules.append(rule)

    def clear_faults(self) -> None:
        with self._lock:
            self._state.rules.clear()

    def take_request_fault(
        self, on: FaultTarget, model: str | None, dialect: str = "native"
    ) -> FaultRule | None:
        """Consume one use of the oldest submit/poll rule matching this request, if any."""
        if on is FaultTarget.RENDER:
            raise ValueError("render faults are taken when a render is created")
        with self._lock:
            return self._take(on, model, dialect)

    # -- counters ---------------------------------------------------------------------------

    def count_submit(self) -> None:
        with self._lock:
            self._state.submits += 1

    def count_poll(self) -> None:
        with self._lock:
            self._state.polls += 1

    def stats(self) -> Stats:
        with self._lock:
            return Stats(submits=self._state.submits, polls=self._state.polls)

    def reset(self) -> None:
        """Forget every render, rule and counter, as if the farm had just started."""
        with self._lock:
            self._state = _State()

    # -- internals (call with the lock held) ------------------------------------------------

    def _take(self, on: FaultTarget, model: str | None, dialect: str) -> FaultRule | None:
        rules = self._state.rules
        for index, rule in enumerate(rules):
            if rule.matches(on, model, dialect):
                if rule.times > 1:
                    rules[index] = replace(rule, times=rule.times - 1)
                else:
                    del rules[index]
                return rule
        return None

    def _take_render_fault(
        self, model: str, dialect: str
    ) -> tuple[Phase, RenderError, FaultKind | None] | None:
        rule = self._take(FaultTarget.RENDER, model, dialect)
        if rule is None:
            return None
        return rule.at_phase, RenderError(code=rule.code, message=rule.describe()), rule.kind

    def _snapshot(self, render: _Render) -> RenderSnapshot:
        total = self._render_seconds
        now = self._clock() if render.canceled_at is None else render.canceled_at
        elapsed = max(0.0, now - render.started_at)
        phase = _phase_at(elapsed, total)
        if render.canceled_at is not None:
            return RenderSnapshot(
                id=render.id,
                spec=render.spec,
                status=Phase.CANCELED,
                progress=1.0 if total <= 0 else min(elapsed / total, 1.0),
                eta_seconds=0.0,
                error=None,
                created_at=render.created_at,
            )
        if render.doomed is not None:
            fail_at, error, kind = render.doomed
            if _PHASE_ORDER[phase] >= _PHASE_ORDER[fail_at]:
                # The render stopped making progress the moment it entered the fatal phase.
                return RenderSnapshot(
                    id=render.id,
                    spec=render.spec,
                    status=Phase.FAILED,
                    progress=_PHASE_START[fail_at],
                    eta_seconds=0.0,
                    error=error,
                    created_at=render.created_at,
                    fault_kind=kind,
                )
        return RenderSnapshot(
            id=render.id,
            spec=render.spec,
            status=phase,
            progress=1.0 if total <= 0 else min(elapsed / total, 1.0),
            eta_seconds=max(total - elapsed, 0.0),
            error=None,
            created_at=render.created_at,
            queue_position=self._queue_position(render) if phase is Phase.QUEUED else None,
        )

    def _queue_position(self, render: _Render) -> int:
        """Renders created earlier that are still queued: a plain FIFO picture. Renders start
        in creation order and all take as long, so the still-queued ones are a suffix."""
        queued_since = self._clock() - _PHASE_START[Phase.PREPARING] * self._render_seconds
        first_queued = bisect.bisect_right(self._state.started, queued_since)
        return max(0, render.seq - first_queued)


def _ended(phase: Phase) -> bool:
    return phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED)


def _phase_at(elapsed: float, total: float) -> Phase:
    """The last phase whose start time has passed; with no render time, it is already done."""
    if total <= 0:
        return Phase.SUCCEEDED
    current = Phase.QUEUED
    for phase, fraction in PHASE_STARTS:
        if elapsed >= fraction * total:
            current = phase
    return current
