"""The simulator's wire dialects, one module per real provider, all over one render farm.

Each module has ``NAME`` (the provider's name in genhook's catalog), ``PREFIX`` (where its
paths are mounted: the provider's base URL in genhook's settings is the simulator's URL plus
that prefix, see ``backend/simulator/credentials.py``) and ``mount(app, farm, callbacks)``.
"""

from __future__ import annotations

from types import ModuleType

from backend.simulator.dialects import (
    byteplus,
    fal,
    gemini,
    kling,
    luma,
    minimax,
    replicate,
    runway,
)

ALL: tuple[ModuleType, ...] = (kling, fal, replicate, runway, luma, byteplus, gemini, minimax)
