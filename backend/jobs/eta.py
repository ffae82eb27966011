"""When a render will be done, and so when it is worth asking the provider again.

Pure arithmetic, no I/O: the poll step feeds it the expected total time of the route
(``backend/render_history.py``), the time the render has taken so far and what the provider
said, and stores the answers (``eta_seconds``, ``next_poll_at``).

Polling every job at the route's minimum interval would cost thousands of provider calls a
minute for nothing: most polls of a 3-minute render only learn "still running". Instead a
job is polled rarely while far from its expected end and at the minimum interval near it,
so a render costs a handful of calls and its end is still noticed within about one minimum
interval of when it was expected.
"""

from __future__ import annotations

#: Once a render runs late, it is never shown as closer to done than this fraction of the
#: time it has already taken: a render late by minutes is not "0 s away" for minutes.
OVERDUE_ETA_FRACTION = 0.1
#: Far from its end a job waits this fraction of the estimated remaining time: halving the
#: distance each poll reaches the end in a few polls without overshooting it.
POLL_FRACTION_OF_REMAINING = 0.5
#: Past the expected end the wait grows by this fraction of how late the render is, so a
#: stuck render costs few calls while a slightly late one is still seen quickly.
POLL_FRACTION_OF_LATENESS = 0.25
#: When the provider will call back, a backstop poll never waits longer than this many
#: backstop intervals (``GENHOOK_PROVIDER_CALLBACK_POLL_SECONDS``): 30 s by default, so a
#: lost callback (a worker killed, Redis flushed, the API down when the provider called) is
#: made up for within that, and a 60 s render still costs about four polls. (Eight, tried
#: first, left the chaos test's jobs whose last callback was lost waiting for the catalog's
#: expected end, past its minute.)
BACKSTOP_MAX_INTERVALS = 2


def estimate_eta_seconds(
    *, expected_total: float, elapsed: float, progress: float | None, provider_eta: float | None
) -> float:
    """Seconds until the render is likely done; never negative.

    - The provider's own ETA, when it gives one, wins: it knows its queue.
    - Else the history says ``expected_total - elapsed``; past that, a tenth of the time
      taken so far (``OVERDUE_ETA_FRACTION``), so the estimate keeps growing while late.
    - A running render at 100 % is about to finish: 0.
    - A progress ``p`` in (0, 100) refines it: at that pace ``elapsed * (100 - p) / p``
      remain. Early progress numbers are noisy (queueing, warm-up), so the pace gets weight
      ``p / 100`` and the history the rest.
    """
    if provider_eta is not None:
        return max(0.0, provider_eta)
    if progress is not None and progress >= 100:
        return 0.0  # the provider says it is all but done: look again soon
    elapsed = max(0.0, elapsed)
    by_history = max(expected_total - elapsed, OVERDUE_ETA_FRACTION * elapsed)
    if progress is None or not 0 < progress < 100:
        return max(0.0, by_history)
    by_pace = elapsed * (100 - progress) / progress
    weight = progress / 100
    return max(0.0, weight * by_pace + (1 - weight) * by_history)


def next_poll_delay_seconds(
    *,
    expected_total: float,
    elapsed: float,
    eta: float | None,
    min_interval: float,
    max_interval: float,
) -> float:
    """Seconds to wait before polling a running render again.

    Two signals say where the end is, and whichever says it is nearer wins:

    - the history: before the expected end wait half the time left to it
      (``POLL_FRACTION_OF_REMAINING``); after it, a quarter of how late the render is
      (``POLL_FRACTION_OF_LATENESS``), so polls are dense just around the expected end;
    - the ``eta`` (from ``estimate_eta_seconds``), when known: half of it.

    The result is kept within [``min_interval``, ``max_interval``]; the route's minimum
    (e.g. Runway's 5 s) wins should the two conflict, since it protects our rate limit.
    """
    to_expected_end = expected_total - elapsed
    if to_expected_end > 0:
        delay = POLL_FRACTION_OF_REMAINING * to_expected_end
    else:
        delay = POLL_FRACTION_OF_LATENESS * -to_expected_end
    if eta is not None:
        delay = min(delay, POLL_FRACTION_OF_REMAINING * max(0.0, eta))
    return max(min_interval, min(max_interval, delay))


def backstop_delay_seconds(*, eta: float, backstop: float, min_interval: float) -> float:
    """Seconds to wait before the next poll of a render whose provider will call back.

    The callback says when the render ends, so polling is only a backstop for a callback
    that is lost: it comes ``backstop`` after the render's expected end (its ``eta``),
    so a render that ends on time is seen through its callback alone. The wait is at
    least ``backstop`` (and the route's minimum) and at most ``BACKSTOP_MAX_INTERVALS``
    backstops, so a lost callback of a long render is not waited for forever.
    """
    delay = min(max(0.0, eta) + backstop, BACKSTOP_MAX_INTERVALS * backstop)
    return max(min_interval, backstop, delay)
