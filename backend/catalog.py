"""The model catalog: which models genhook offers, what they cost, who renders them, and
what a job falls back to when its provider cannot.

The catalog is a TOML file (``backend/catalog.toml``, or the operator's own through
``GENHOOK_CATALOG_FILE``), checked once at start: a mistake stops genhook with a message
naming the entry at fault, never a job that fails later. Each model lists its ``routes``
(a provider and that provider's own model name) and its ``fallbacks`` (other models).
A job's route plan is built from them by :meth:`Catalog.route_plan`; failing over along it
is ``backend/jobs/failover.py``'s business.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: Durations a client may ask for, as accepted on the wire.
DURATIONS = {"5s": 5, "10s": 10}
ASPECT_RATIOS = ("16:9", "9:16", "1:1")

#: What a model can take besides its prompt.
TEXT = "text"
IMAGE = "image"
END_IMAGE = "end_image"

#: The catalog shipped with genhook.
DEFAULT_CATALOG_FILE = Path(__file__).with_name("catalog.toml")

Duration = Literal["5s", "10s"]
AspectRatio = Literal["16:9", "9:16", "1:1"]
Input = Literal["text", "image", "end_image"]
ModelId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


class CatalogError(ValueError):
    """The catalog file cannot be used; the message says where and why."""


class Route(BaseModel):
    """One way to render a model: a provider and the provider's name for the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    #: Shortest interval between two polls of a task on this route (e.g. Runway's 5 s).
    poll_interval_seconds: float | None = Field(default=None, gt=0, strict=True)
    #: What a second of video costs the operator here; reported, never billed.
    cost_per_second: float | None = Field(default=None, ge=0, strict=True)

    @property
    def key(self) -> str:
        """``provider/model``: names the route in health and render-time statistics."""
        return f"{self.provider}/{self.model}"


class CatalogModel(BaseModel):
    """A video model and its price in credits per duration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ModelId
    name: str = Field(min_length=1)
    description: str = ""
    # Strict numbers: a price of "3" or true in the file is a typo to report, not to guess.
    credits: dict[Duration, Annotated[int, Field(ge=0, strict=True)]] = Field(min_length=1)
    inputs: tuple[Input, ...] = ("text",)
    aspect_ratios: tuple[AspectRatio, ...] = Field(default=("16:9", "9:16", "1:1"), min_length=1)
    #: Wall-clock render time before real renders have been timed; seeds the ETA.
    typical_render_seconds: float = Field(default=120, gt=0, strict=True)
    #: Unfinished after this, a job is failed and refunded; None = the server's default.
    max_wait_seconds: float | None = Field(default=None, gt=0, strict=True)
    routes: tuple[Route, ...] = Field(min_length=1)
    fallbacks: tuple[ModelId, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> CatalogModel:
        if TEXT not in self.inputs:
            raise ValueError('inputs must include "text"')
        if self.id in self.fallbacks:
            raise ValueError("a model cannot fall back to itself")
        if len(set(self.fallbacks)) != len(self.fallbacks):
            raise ValueError("fallbacks lists a model twice")
        return self

    def price(self, duration_seconds: int) -> int | None:
        """Credits for a duration in seconds; None when the model does not offer it."""
        prices: dict[str, int] = {label: price for label, price in self.credits.items()}
        label = next((k for k, v in DURATIONS.items() if v == duration_seconds), "")
        return prices.get(label)

    def takes(self, input_name: str) -> bool:
        return input_name in self.inputs

    def route_for(self, enabled: Collection[str]) -> Route | None:
        """The first route whose provider is enabled, if any."""
        return next((r for r in self.routes if r.provider in enabled), None)


@dataclass(frozen=True)
class Hop:
    """One step of a job's route plan: a model and one of its routes."""

    model: CatalogModel
    route: Route


class Catalog:
    """The checked catalog: models by id, and the route plans built from them."""

    def __init__(self, models: Iterable[CatalogModel]) -> None:
        self.models: dict[str, CatalogModel] = {m.id: m for m in models}

    def get(self, model_id: str) -> CatalogModel | None:
        return self.models.get(model_id)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self.models

    def chain(self, model_id: str) -> list[str]:
        """The model ids a job for ``model_id`` may be rendered as, in order."""
        return [model_id, *self.models[model_id].fallbacks]

    def route_plan(self, model_id: str) -> list[Hop]:
        """Every route a job may take, in order: the model's own, then each fallback's.

        A route that appears twice (two models rendered by the same provider model) is
        kept only the first time. Which hops are usable for a given job (enabled, takes
        its inputs, not open in the circuit breaker) is decided when routing."""
        plan: list[Hop] = []
        seen: set[str] = set()
        for chained in self.chain(model_id):
            model = self.models[chained]
            for route in model.routes:
                if route.key not in seen:
                    seen.add(route.key)
                    plan.append(Hop(model, route))
        return plan

    def all_routes(self) -> list[Route]:
        """Every distinct route of every model, in catalog order."""
        routes: dict[str, Route] = {}
        for model in self.models.values():
            for route in model.routes:
                routes.setdefault(route.key, route)
        return list(routes.values())


def load_catalog(path: Path | None, known_providers: Collection[str]) -> Catalog:
    """Read and check a catalog file; raises :class:`CatalogError` naming the entry at fault."""
    path = path or DEFAULT_CATALOG_FILE
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise CatalogError(f"catalog file {path}: cannot be read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        # tomllib decodes the bytes itself and lets a UnicodeDecodeError through.
        raise CatalogError(f"catalog file {path}: not valid TOML ({exc})") from None
    unknown_keys = set(document) - {"models"}
    if unknown_keys:
        raise CatalogError(f"catalog file {path}: unknown top-level key(s) {sorted(unknown_keys)}")
    tables = document.get("models")
    if not isinstance(tables, dict) or not tables:
        raise CatalogError(f"catalog file {path}: no [models.<id>] tables")
    models = [_model(path, model_id, table) for model_id, table in tables.items()]
    catalog = Catalog(models)
    _check_references(path, catalog, known_providers)
    return catalog


def _model(path: Path, model_id: str, table: object) -> CatalogModel:
    if not isinstance(table, dict):
        raise CatalogError(f"catalog file {path}: models.{model_id} must be a table")
    if "id" in table:
        # The table's name is the id; a second one would be silently ignored.
        raise CatalogError(
            f"catalog file {path}: models.{model_id}.id: not allowed, the table name is the id"
        )
    try:
        return CatalogModel.model_validate({**table, "id": model_id})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        where = f"models.{model_id}" + (f".{where}" if where else "")
        raise CatalogError(f"catalog file {path}: {where}: {first['msg']}") from None


def _check_references(path: Path, catalog: Catalog, known_providers: Collection[str]) -> None:
    for model in catalog.models.values():
        for index, route in enumerate(model.routes):
            if route.provider not in known_providers:
                raise CatalogError(
                    f"catalog file {path}: models.{model.id}.routes.{index}.provider: "
                    f"unknown provider {route.provider!r}; known: {', '.join(known_providers)}"
                )
        for fallback in model.fallbacks:
            if fallback not in catalog:
                raise CatalogError(
                    f"catalog file {path}: models.{model.id}.fallbacks: "
                    f"no model {fallback!r} in the catalog"
                )
