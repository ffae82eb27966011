"""The one table of ``bench/run.py``: each figure over its runs, its ceiling, ratio and target.

Why it exists: issue 12 asks for every figure side by side with its ceiling, as a range over
at least three runs, against its target, in one table that the lead pastes into
``docs/benchmarks.md``. Each run's ratio is taken against the ceiling measured in the same
run; the table gives the range (min-max) and the median of the runs.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

COLUMNS = ("figure", "runs: min-max (median)", "ceiling (median)", "ratio", "target", "met?")


@dataclass(frozen=True)
class Target:
    """What the figure (or, with ``on_ratio``, its ratio to the ceiling) must reach."""

    text: str
    met: Callable[[float], bool]
    on_ratio: bool = False


def at_least(bound: float, text: str, *, on_ratio: bool = False) -> Target:
    return Target(text, lambda v: v >= bound, on_ratio)


def at_most(bound: float, text: str) -> Target:
    return Target(text, lambda v: v <= bound)


def below(bound: float, text: str) -> Target:
    return Target(text, lambda v: v < bound)


@dataclass
class Row:
    """One figure: its value in each run, and the ceiling measured in the same run."""

    name: str
    unit: str
    target: Target | None = None
    values: list[float] = field(default_factory=list)
    ceilings: list[float] = field(default_factory=list)
    ceiling_name: str = ""
    #: Digits after the decimal point.
    digits: int = 0

    def add(self, value: float, ceiling: float | None = None) -> None:
        self.values.append(value)
        if ceiling is not None:
            self.ceilings.append(ceiling)

    @property
    def ratios(self) -> list[float]:
        if not self.ceilings or len(self.ceilings) != len(self.values):
            return []
        return [v / c if c else math.nan for v, c in zip(self.values, self.ceilings, strict=True)]

    def cells(self) -> tuple[str, ...]:
        figure = f"{self.name} ({self.unit})" if self.unit else self.name
        ceiling = ""
        if self.ceilings:
            ceiling = (
                f"{_number(statistics.median(self.ceilings), self.digits)} {self.ceiling_name}"
            )
        ratios = self.ratios
        ratio = _spread(ratios, 3, suffix="x") if ratios else ""
        met = ""
        if self.target is not None and self.values:
            judged = ratios if self.target.on_ratio else self.values
            if judged and not math.isnan(statistics.median(judged)):
                met = "yes" if self.target.met(statistics.median(judged)) else "no"
        return (
            figure,
            _spread(self.values, self.digits) if self.values else "not measured",
            ceiling.strip(),
            ratio,
            self.target.text if self.target else "",
            met,
        )


def _number(value: float, digits: int) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _spread(values: list[float], digits: int, suffix: str = "") -> str:
    median = _number(statistics.median(values), digits) + suffix
    if len(values) == 1:
        return median
    low, high = _number(min(values), digits), _number(max(values), digits)
    return f"{low}-{high}{suffix} ({median})"


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def text(rows: list[Row]) -> str:
    cells = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[n]) for line in cells) for n in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )
