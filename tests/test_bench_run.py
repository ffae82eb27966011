"""bench/run.py's pieces, in a tiny mode: its table, its wrk scripts and reports, its
ceiling app. No timing is asserted; nothing here starts genhook."""

from __future__ import annotations

import json
from pathlib import Path

import falcon.testing

from bench import hello, run, wrk
from bench.stack_processes import role_of
from bench.table import Row, at_least, markdown, text

WRK_REPORT = """Running 4s test @ http://127.0.0.1:8401/v1/video/generations
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   167.46ms  166.53ms   1.23s    91.22%
    Req/Sec    92.97     42.54   171.00     61.29%
  Latency Distribution
     50%  112.91ms
     75%  194.99ms
     90%  324.19ms
     99%    1.02s
  300 requests in 1.97s, 370.90KB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:    152.11
Transfer/sec:    188.06KB
"""


def test_a_wrk_report_is_read_with_its_percentiles_and_failures() -> None:
    result = wrk.parse(WRK_REPORT)

    assert (result.requests, result.non_2xx, result.socket_errors) == (300, 4, 3)
    assert (result.rate, result.p50_ms, result.p99_ms, result.seconds) == (
        152.11,
        112.91,
        1020.0,
        1.97,
    )
    assert result.ok == 296


def test_the_counted_post_script_splits_the_count_over_wrk_threads(tmp_path: Path) -> None:
    body = json.dumps({"model": "m", "prompt": 'say "hi"'})

    script, marker = wrk.counted_post_script(
        tmp_path / "post.lua", body=body, bearer="gh_key", count=301
    )

    lua = script.read_text()
    assert f"wrk.body = {json.dumps(body)}" in lua
    assert 'wrk.headers["Authorization"] = "Bearer gh_key"' in lua
    assert f"if answered == {-(-301 // wrk.THREADS)} then" in lua
    assert marker.read_text() == ""


def test_the_get_script_spreads_requests_over_every_path(tmp_path: Path) -> None:
    lua = wrk.get_script(tmp_path / "get.lua", paths=["/a", "/b"], bearer="k").read_text()

    assert 'local paths = {"/a", "/b"}' in lua


def test_the_ceiling_app_answers_a_get_and_a_submission() -> None:
    client = falcon.testing.TestClient(hello.app)

    assert client.simulate_get("/v1/video/generations/x").status_code == 200
    assert client.simulate_post("/v1/video/generations", json={"a": 1}).status_code == 202


def test_the_table_has_every_figure_with_its_ratio_and_verdict() -> None:
    rows = run.make_rows([1000, 10_000])
    for n, row in enumerate(rows.values()):
        row.add(n + 1.0, 10.0 if row.ceiling_name else None)

    table = markdown(list(rows.values()))

    lines = table.splitlines()
    assert len(lines) == 2 + len(rows)
    assert all(line.count("|") == 7 for line in lines)
    for row in rows.values():
        assert row.name in table
    assert text(list(rows.values())).count("\n") == len(rows)


def test_a_row_gives_the_range_the_median_and_the_ratio_per_run() -> None:
    row = Row("submit", "req/s", at_least(0.3, ">= 0.3x", on_ratio=True), ceiling_name="bare")
    for value, ceiling in ((100.0, 1000.0), (400.0, 1000.0), (300.0, 1000.0)):
        row.add(value, ceiling)

    _, runs, ceiling, ratio, _, met = row.cells()

    assert (runs, ceiling, ratio, met) == (
        "100-400 (300)",
        "1,000 bare",
        "0.100-0.400x (0.300x)",
        "yes",
    )


def test_quick_mode_shrinks_every_count() -> None:
    quick, full = run.parse_args(["--quick"]), run.parse_args([])

    assert quick.lifecycle_jobs < full.lifecycle_jobs
    assert quick.deliveries < full.deliveries
    assert max(quick.checkpoints) < max(full.checkpoints) == 10_000
    assert full.runs == 3 and full.only == run.FIGURES


def test_stack_processes_are_told_apart_by_their_command_lines() -> None:
    assert role_of("python -m dramatiq backend.actors --processes 1") == "worker"
    assert role_of("python -m gunicorn --bind 127.0.0.1:8400 backend.api.wsgi:application()") == (
        "api"
    )
    assert role_of("python -m gunicorn backend.simulator.app:gunicorn_app()") == "simulator"
    assert role_of("python -m backend.cli scheduler") == "scheduler"
