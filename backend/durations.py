"""Human durations ("0s", "5m", "2h", "200ms") for settings and the endpoint API."""

from __future__ import annotations

from pytimeparse2 import parse as _parse


def parse_duration(value: str | float | int) -> float:
    """Seconds in ``value``: a number of seconds or a duration string; ``ValueError`` if neither."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string such as '5m'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        parsed = _parse(value.strip())
        if parsed is None:
            raise ValueError(f"{value!r} is not a duration (use e.g. 0s, 5s, 30s, 5m, 2h)")
        seconds = float(parsed)
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_schedule(value: str) -> list[float]:
    """A comma-separated list of durations, e.g. ``"0s,5s,30s"``."""
    return [parse_duration(part) for part in value.split(",") if part.strip()]
