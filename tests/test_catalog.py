"""The model catalog: the shipped file, an operator's own through GENHOOK_CATALOG_FILE, the
checks that stop genhook at start with a message naming the entry at fault, and the route
plan a job is given from it.

No worker runs here: a catalog decides what a job may do before anything is submitted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from falcon import testing

from backend.catalog import Catalog, CatalogError, load_catalog
from backend.cli import main
from backend.jobs.routes import JobShape, PlannedRoute, build_plan
from backend.providers.registry import ADAPTERS, PROVIDER_NAMES, SIMULATOR
from backend.settings import Settings, get_settings
from backend.simulator.credentials import provider_settings
from tests.conftest import make_settings
from tests.support.api import GENERATIONS

#: An operator's catalog: Alpha renders on Kling (configured in these tests) and falls back
#: to Beta, which only Runway (not configured) renders.
OPERATOR_CATALOG = """
[models.alpha]
name = "Alpha"
description = "Short clips only."
credits = { "5s" = 2 }
inputs = ["text", "image"]
aspect_ratios = ["16:9"]
typical_render_seconds = 30
fallbacks = ["beta"]
routes = [{ provider = "kling", model = "pm-alpha-001", cost_per_second = 0.071 }]

[models.beta]
name = "Beta"
credits = { "5s" = 3, "10s" = 6 }
max_wait_seconds = 600
[[models.beta.routes]]
provider = "runway"
model = "pm-beta-002"
poll_interval_seconds = 5
cost_per_second = 0.093
"""

#: A chain for route plans: ``main`` falls back to four models that each miss one thing
#: (``wide``: only 16:9; ``short``: only 5 s and text; ``noend``: no last frame), and to
#: ``twin``, which shares fal's route with ``main``.
PLAN_CATALOG = """
[models.main]
name = "Main"
credits = { "5s" = 6, "10s" = 12 }
inputs = ["text", "image", "end_image"]
typical_render_seconds = 50
fallbacks = ["wide", "short", "noend", "twin"]
routes = [
  { provider = "kling", model = "k-main" },
  { provider = "fal", model = "f-main", poll_interval_seconds = 3 },
]

[models.wide]
name = "Wide"
credits = { "5s" = 5, "10s" = 10 }
inputs = ["text", "image", "end_image"]
aspect_ratios = ["16:9"]
routes = [{ provider = "runway", model = "r-wide" }]

[models.short]
name = "Short"
credits = { "5s" = 4 }
routes = [{ provider = "luma", model = "l-short" }]

[models.noend]
name = "No end"
credits = { "5s" = 3, "10s" = 6 }
inputs = ["text", "image"]
routes = [{ provider = "replicate", model = "rep-noend" }]

[models.twin]
name = "Twin"
credits = { "5s" = 2, "10s" = 4 }
inputs = ["text", "image", "end_image"]
routes = [{ provider = "fal", model = "f-main" }, { provider = "byteplus", model = "b-twin" }]
"""

#: One valid model, the base every broken catalog below changes one thing of.
VALID_MODEL = {
    "name": '"Alpha"',
    "credits": '{ "5s" = 2 }',
    "routes": '[{ provider = "kling", model = "k-alpha" }]',
}

EVERY_PROVIDER = set(PROVIDER_NAMES)
TEXT_5S = JobShape(duration_seconds=5, aspect_ratio="16:9", has_image=False, has_end_image=False)


def write(tmp_path: Path, text: str, name: str = "catalog.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def model_toml(model_id: str = "alpha", **changes: str | None) -> str:
    """One ``[models.<id>]`` table: :data:`VALID_MODEL` with ``changes`` (None drops a key)."""
    keys = {**VALID_MODEL, **changes}
    lines = [f"{key} = {value}" for key, value in keys.items() if value is not None]
    return f'[models."{model_id}"]\n' + "\n".join(lines) + "\n"


def load_text(tmp_path: Path, text: str) -> Catalog:
    return load_catalog(write(tmp_path, text), PROVIDER_NAMES)


def keys(plan: list[PlannedRoute]) -> list[str]:
    return [hop.key for hop in plan]


# -- the shipped catalog --------------------------------------------------------------------


def test_the_shipped_catalog_loads_and_names_only_providers_genhook_has_adapters_for() -> None:
    catalog = load_catalog(None, PROVIDER_NAMES)

    adapters = {module.__name__.rsplit(".", 1)[-1] for module in ADAPTERS}
    for model in catalog.models.values():
        assert {route.provider for route in model.routes} <= adapters, model.id
        assert all(fallback in catalog for fallback in model.fallbacks), model.id
    # ...and every adapter renders at least one model
    assert {route.provider for route in catalog.all_routes()} == adapters


def test_the_shipped_route_plans_are_own_routes_then_each_fallbacks() -> None:
    catalog = load_catalog(None, PROVIDER_NAMES)

    def plan(model_id: str) -> list[tuple[str, str]]:
        return [(hop.model.id, hop.route.key) for hop in catalog.route_plan(model_id)]

    assert plan("kling-v3") == [
        ("kling-v3", "kling/kling-v3"),
        ("kling-v3", "fal/fal-ai/kling-video/v3/pro/text-to-video"),
        ("seedance-1-pro", "byteplus/seedance-1-0-pro-250528"),
        ("seedance-1-pro", "replicate/bytedance/seedance-1-pro"),
        ("kling-o3-pro", "fal/fal-ai/kling-video/o3/pro/text-to-video"),
    ]
    # Fallbacks are not followed further: kling-v3's own fallbacks are not seedance's
    assert plan("seedance-1-pro") == [
        ("seedance-1-pro", "byteplus/seedance-1-0-pro-250528"),
        ("seedance-1-pro", "replicate/bytedance/seedance-1-pro"),
        ("wan-2.5", "replicate/wan-video/wan-2.5-t2v"),
        ("kling-v3", "kling/kling-v3"),
        ("kling-v3", "fal/fal-ai/kling-video/v3/pro/text-to-video"),
    ]


def test_a_route_shared_by_a_fallback_is_planned_once_under_the_first_model(
    tmp_path: Path,
) -> None:
    catalog = load_text(tmp_path, PLAN_CATALOG)

    plan = [(hop.model.id, hop.route.key) for hop in catalog.route_plan("main")]

    assert plan == [
        ("main", "kling/k-main"),
        ("main", "fal/f-main"),
        ("wide", "runway/r-wide"),
        ("short", "luma/l-short"),
        ("noend", "replicate/rep-noend"),
        ("twin", "byteplus/b-twin"),
    ]


# -- an operator's catalog through the API ---------------------------------------------------


@pytest.fixture
def settings(database_url: str, redis_url: str, simulator: str, tmp_path: Path) -> Settings:
    """The operator's catalog, with only Kling configured and no simulator stand-in."""
    return make_settings(
        database_url,
        redis_url,
        simulator,
        simulator_fallback=False,
        catalog_file=write(tmp_path, OPERATOR_CATALOG),
        **provider_settings(simulator)["kling"],
    )


def test_an_operators_catalog_replaces_the_shipped_one_and_hides_how_it_is_rendered(
    api: testing.TestClient, settings: Settings
) -> None:
    result = api.simulate_get("/v1/models")

    assert result.status_code == 200, result.text
    assert result.json["data"] == [
        {
            "object": "model",
            "id": "alpha",
            "name": "Alpha",
            "description": "Short clips only.",
            "credits": {"5s": 2},
            "aspect_ratios": ["16:9"],
            "inputs": ["text", "image"],
            "typical_render_seconds": 30.0,
            "max_wait_seconds": settings.job_timeout_seconds,
            "failover": ["alpha", "beta"],
            "available": True,
        },
        {
            "object": "model",
            "id": "beta",
            "name": "Beta",
            "description": "",
            "credits": {"5s": 3, "10s": 6},
            "aspect_ratios": ["16:9", "9:16", "1:1"],
            "inputs": ["text"],
            "typical_render_seconds": 120.0,
            "max_wait_seconds": 600.0,
            "failover": ["beta"],
            # Runway, its one route, is not configured here
            "available": False,
        },
    ]
    # Nothing about providers, their model names or what they cost the operator leaks
    body = result.text.lower()
    for secret in ("kling", "runway", "pm-alpha-001", "pm-beta-002", "cost", "0.071", "0.093"):
        assert secret not in body, secret
    assert "poll_interval" not in body and "routes" not in body


def test_a_duration_the_model_does_not_offer_is_a_422_naming_duration(
    api: testing.TestClient, auth: dict[str, str]
) -> None:
    body = {"model": "alpha", "prompt": "A red chair", "duration": "10s"}

    result = api.simulate_post(GENERATIONS, json=body, headers=auth)

    assert result.status_code == 422, result.text
    [error] = result.json["errors"]
    assert error["field"] == "duration"
    assert "alpha" in error["message"] and "5s" in error["message"]


def test_an_unknown_model_is_a_422_naming_model_and_listing_the_catalogs_ids(
    api: testing.TestClient, auth: dict[str, str]
) -> None:
    body = {"model": "kling-v3", "prompt": "A red chair"}  # shipped, but not in this catalog

    result = api.simulate_post(GENERATIONS, json=body, headers=auth)

    assert result.status_code == 422, result.text
    [error] = result.json["errors"]
    assert error["field"] == "model"
    assert error["message"].endswith("choose one of: alpha, beta")


# -- checks at start -------------------------------------------------------------------------


BROKEN = [
    pytest.param(
        model_toml(routes='[{ provider = "acme", model = "k" }]'),
        "models.alpha.routes.0.provider: unknown provider 'acme'",
        id="unknown-provider",
    ),
    pytest.param(
        model_toml(
            routes='[{ provider = "kling", model = "k" }, { provider = "acme", model = "a" }]'
        ),
        "models.alpha.routes.1.provider",
        id="unknown-provider-on-the-second-route",
    ),
    pytest.param(
        model_toml(fallbacks='["gamma"]'),
        "models.alpha.fallbacks: no model 'gamma'",
        id="unknown-fallback",
    ),
    pytest.param(
        model_toml(fallbacks='["alpha"]'),
        "models.alpha: Value error, a model cannot fall back to itself",
        id="self-fallback",
    ),
    pytest.param(
        model_toml(routes=None), "models.alpha.routes: Field required", id="missing-routes"
    ),
    pytest.param(model_toml(routes="[]"), "models.alpha.routes: ", id="no-routes"),
    pytest.param(
        model_toml(routes='[{ provider = "kling" }]'),
        "models.alpha.routes.0.model: Field required",
        id="route-without-model",
    ),
    pytest.param(
        model_toml(credits='{ "5s" = -1 }'),
        "models.alpha.credits.5s: Input should be greater than or equal to 0",
        id="negative-price",
    ),
    pytest.param(
        model_toml(credits='{ "5s" = 2.5 }'), "models.alpha.credits.5s: ", id="fractional-price"
    ),
    pytest.param(
        model_toml(credits='{ "5s" = 2.0 }'), "models.alpha.credits.5s: ", id="float-price"
    ),
    pytest.param(
        model_toml(credits='{ "5s" = "3" }'), "models.alpha.credits.5s: ", id="price-as-text"
    ),
    pytest.param(
        model_toml(credits='{ "5s" = true }'), "models.alpha.credits.5s: ", id="price-as-boolean"
    ),
    pytest.param(model_toml(credits="{}"), "models.alpha.credits: ", id="no-prices"),
    pytest.param(
        model_toml(credits='{ "7s" = 2 }'), "models.alpha.credits.7s", id="unknown-duration"
    ),
    pytest.param(
        model_toml(colour='"red"'),
        "models.alpha.colour: Extra inputs are not permitted",
        id="unknown-key",
    ),
    pytest.param(
        model_toml(routes='[{ provider = "kling", model = "k", speed = 2 }]'),
        "models.alpha.routes.0.speed: Extra inputs are not permitted",
        id="unknown-route-key",
    ),
    pytest.param(
        model_toml(id='"beta"'), "models.alpha.id: ", id="an-id-key-besides-the-table-name"
    ),
    pytest.param(
        model_toml(aspect_ratios='["16:9", "4:3"]'),
        "models.alpha.aspect_ratios.1: ",
        id="bad-aspect-ratio",
    ),
    pytest.param(
        model_toml(aspect_ratios="[]"), "models.alpha.aspect_ratios: ", id="no-aspect-ratios"
    ),
    pytest.param(
        model_toml(inputs='["image"]'),
        'models.alpha: Value error, inputs must include "text"',
        id="inputs-without-text",
    ),
    pytest.param(
        model_toml(inputs='["text", "audio"]'), "models.alpha.inputs.1: ", id="unknown-input"
    ),
    pytest.param(
        model_toml(typical_render_seconds='"90"'),
        "models.alpha.typical_render_seconds: ",
        id="render-time-as-text",
    ),
    pytest.param(
        model_toml(routes='[{ provider = "kling", model = "k", poll_interval_seconds = 0 }]'),
        "models.alpha.routes.0.poll_interval_seconds: ",
        id="zero-poll-interval",
    ),
    pytest.param(
        model_toml(routes='[{ provider = "kling", model = "k", cost_per_second = -0.1 }]'),
        "models.alpha.routes.0.cost_per_second: ",
        id="negative-cost",
    ),
    pytest.param(model_toml("Alpha Model"), "models.Alpha Model.id: ", id="model-id-with-a-space"),
    pytest.param(
        model_toml() + 'version = "2"\n', "models.alpha.version: ", id="stray-key-after-a-table"
    ),
    pytest.param(
        'title = "mine"\n' + model_toml(), "unknown top-level key(s) ['title']", id="top-level"
    ),
    pytest.param("", "no [models.<id>] tables", id="empty-file"),
    pytest.param("[models]\n", "no [models.<id>] tables", id="no-models"),
    pytest.param("models = 3\n", "no [models.<id>] tables", id="models-not-a-table"),
    pytest.param("[models]\nalpha = 3\n", "models.alpha must be a table", id="model-not-a-table"),
    pytest.param('[models.alpha]\nname = "Alpha\n', "not valid TOML", id="invalid-toml"),
]


@pytest.mark.parametrize(("text", "message"), BROKEN)
def test_a_broken_catalog_is_refused_naming_the_entry(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(CatalogError) as refused:
        load_catalog(path, PROVIDER_NAMES)

    assert str(refused.value).startswith(f"catalog file {path}: ")
    assert message in str(refused.value)


def test_the_valid_base_of_those_broken_catalogs_loads(tmp_path: Path) -> None:
    """Each case above fails for its one change, not for the base it changes."""
    catalog = load_text(tmp_path, model_toml())

    assert list(catalog.models) == ["alpha"] and catalog.models["alpha"].credits == {"5s": 2}


def test_a_catalog_that_is_not_utf8_is_refused_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_bytes(model_toml().replace('"Alpha"', '"Alph\xe9"').encode("latin-1"))

    with pytest.raises(CatalogError, match="not valid TOML") as refused:
        load_catalog(path, PROVIDER_NAMES)

    assert str(refused.value).startswith(f"catalog file {path}: ")


@pytest.mark.parametrize("where", ["missing", "directory"])
def test_a_catalog_file_that_cannot_be_read_is_refused(tmp_path: Path, where: str) -> None:
    path = tmp_path / "nowhere.toml"
    if where == "directory":
        path.mkdir()

    with pytest.raises(CatalogError, match="cannot be read") as refused:
        load_catalog(path, PROVIDER_NAMES)

    assert str(refused.value).startswith(f"catalog file {path}: ")


# -- the command line ------------------------------------------------------------------------


PointCatalog = Callable[[str | None], Path | None]


@pytest.fixture
def catalog_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[PointCatalog]:
    """Point GENHOOK_CATALOG_FILE at a file the test writes (None: set it empty); the
    settings are read afresh, and forgotten again after the test."""

    def point_at(text: str | None) -> Path | None:
        if text is None:
            monkeypatch.setenv("GENHOOK_CATALOG_FILE", "")
            get_settings.cache_clear()
            return None
        path = write(tmp_path, text, "operator.toml")
        monkeypatch.setenv("GENHOOK_CATALOG_FILE", str(path))
        get_settings.cache_clear()
        return path

    yield point_at
    get_settings.cache_clear()


@pytest.mark.parametrize("command", ["openapi", "providers"])
def test_the_cli_refuses_a_broken_catalog_with_the_message_and_exit_2(
    catalog_env: PointCatalog, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = catalog_env(model_toml(routes='[{ provider = "acme", model = "k" }]'))

    code = main([command])

    out, err = capsys.readouterr()
    assert code == 2
    assert err == (
        f"genhook: catalog file {path}: models.alpha.routes.0.provider: unknown provider "
        f"'acme'; known: {', '.join(PROVIDER_NAMES)}\n"
    )
    assert out == ""


def test_the_same_command_runs_with_a_valid_operators_catalog(
    catalog_env: PointCatalog, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog_env(OPERATOR_CATALOG)

    assert main(["openapi"]) == 0

    document = json.loads(capsys.readouterr().out)
    assert document["openapi"].startswith("3.")


def test_an_empty_catalog_setting_means_the_shipped_catalog(
    catalog_env: PointCatalog, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog_env(None)

    code = main(["openapi"])

    assert code == 0, capsys.readouterr().err


# -- a job's route plan ----------------------------------------------------------------------


@pytest.fixture
def plan_catalog(tmp_path: Path) -> Catalog:
    return load_text(tmp_path, PLAN_CATALOG)


def test_a_plan_keeps_every_enabled_hop_that_fits_each_priced_as_its_own_model(
    plan_catalog: Catalog,
) -> None:
    plan = build_plan(plan_catalog, "main", TEXT_5S, EVERY_PROVIDER)

    assert plan == [
        PlannedRoute("main", "kling", "k-main", 6, 50.0, None),
        PlannedRoute("main", "fal", "f-main", 6, 50.0, 3.0),
        PlannedRoute("wide", "runway", "r-wide", 5, 120.0, None),
        PlannedRoute("short", "luma", "l-short", 4, 120.0, None),
        PlannedRoute("noend", "replicate", "rep-noend", 3, 120.0, None),
        PlannedRoute("twin", "byteplus", "b-twin", 2, 120.0, None),
    ]
    # A plan survives the trip through the job row
    assert [PlannedRoute.from_json(hop.as_json()) for hop in plan] == plan


@pytest.mark.parametrize(
    ("shape", "left_out"),
    [
        pytest.param(
            JobShape(5, "16:9", has_image=True, has_end_image=True),
            ["luma/l-short", "replicate/rep-noend"],
            id="end-image",
        ),
        pytest.param(
            JobShape(5, "16:9", has_image=True, has_end_image=False),
            ["luma/l-short"],
            id="first-frame",
        ),
        pytest.param(JobShape(5, "9:16", False, False), ["runway/r-wide"], id="aspect-ratio"),
        pytest.param(JobShape(10, "16:9", False, False), ["luma/l-short"], id="duration"),
    ],
)
def test_a_plan_leaves_out_the_hops_whose_model_cannot_render_the_job(
    plan_catalog: Catalog, shape: JobShape, left_out: list[str]
) -> None:
    everything = keys(build_plan(plan_catalog, "main", TEXT_5S, EVERY_PROVIDER))

    plan = build_plan(plan_catalog, "main", shape, EVERY_PROVIDER)

    assert keys(plan) == [key for key in everything if key not in left_out]
    prices = {hop.model: hop.credits for hop in plan}
    assert prices["main"] == (12 if shape.duration_seconds == 10 else 6)


def test_a_plan_leaves_out_providers_not_configured_here(plan_catalog: Catalog) -> None:
    plan = build_plan(plan_catalog, "main", TEXT_5S, {"fal", "byteplus", "gemini"})

    assert [(hop.model, hop.key) for hop in plan] == [
        ("main", "fal/f-main"),
        ("twin", "byteplus/b-twin"),
    ]


def test_with_no_route_configured_the_simulator_renders_the_model_itself(
    plan_catalog: Catalog,
) -> None:
    plan = build_plan(plan_catalog, "main", TEXT_5S, {SIMULATOR, "gemini"})

    assert plan == [PlannedRoute("main", SIMULATOR, "main", 6, 50.0, None)]
    # ...and without the simulator standing in there is no plan at all
    assert build_plan(plan_catalog, "main", TEXT_5S, {"gemini"}) == []


def test_the_simulator_never_renders_a_job_its_model_cannot(plan_catalog: Catalog) -> None:
    # A 10 s job of a 5 s-only model: refused before planning, but the plan agrees
    ten_seconds = JobShape(10, "16:9", has_image=False, has_end_image=False)

    assert build_plan(plan_catalog, "short", ten_seconds, {SIMULATOR}) == []
