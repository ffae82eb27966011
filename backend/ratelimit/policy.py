"""A named limit as the operator writes it (``20/second;600/minute``), parsed once."""

from __future__ import annotations

from dataclasses import dataclass

import limits
from limits import RateLimitItem


def parse_limits(value: str) -> list[RateLimitItem]:
    """The windows of a setting: ``<n>/<window>`` items separated by ``;`` (or ``,``);
    empty means no limit. Raises ``ValueError`` on anything else, or a zero amount."""
    if not value.strip():
        return []
    items = limits.parse_many(value)
    for item in items:
        if item.amount < 1:
            raise ValueError(f"{item} allows nothing; remove the setting's value to turn it off")
    return sorted(items, key=lambda item: item.get_expiry())


@dataclass(frozen=True)
class Policy:
    """What is counted (``name``, also the ``RateLimit`` fields' policy name) and its
    windows, shortest first: the first is the burst allowance, the last the sustained rate."""

    name: str
    items: tuple[RateLimitItem, ...]

    @classmethod
    def from_setting(cls, name: str, value: str) -> Policy:
        return cls(name, tuple(parse_limits(value)))

    @property
    def enabled(self) -> bool:
        return bool(self.items)

    def window_name(self, item: RateLimitItem) -> str:
        """``read-60s``: one window of the policy, as the headers name it."""
        return f"{self.name}-{item.get_expiry()}s"

    def describe(self) -> str:
        """``20 per 1 second, 600 per 1 minute``, for error messages."""
        return ", ".join(str(item) for item in self.items)
