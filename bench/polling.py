"""What do jobs in flight cost in provider polls, and how soon is a finished render noticed?

Why it exists: genhook paces its status polls (``backend/jobs/eta.py``): rarely while a
render is far from its expected end, at the route's shortest interval near it, the
expected end coming from the real render times of the route (``backend/render_history.py``,
seeded by the catalog's ``typical_render_seconds``). This bench puts figures on both sides
of that trade: provider polls per job, and the lag from a render's end at the provider to
the job's ``completed_at``.

What one run does: start a real stack with ``genhook up`` in a scratch directory of its own
(bundled Redis, SQLite, the simulator on its own port with ``--render-seconds`` renders),
create an account, submit ``--jobs`` jobs of ``runway-gen4.5`` (Runway never calls back, so
every job is polled), wait until none is pending or processing, and read the simulator's
``/_sim/stats`` poll counter (the Runway dialect counts its ``GET /v1/tasks/{id}``) before
and after. Lag = the job's ``completed_at`` - (its render's creation at the simulator +
render seconds); jobs and renders are matched by their unique prompt.

- ``adaptive``: the defaults; two batches on the same stack, the first paced by the
  catalog's typical time (90 s for Runway), the second by the history the first taught.
- ``fixed``: ``GENHOOK_POLL_MAX_INTERVAL_SECONDS`` = the route's minimum (5 s for Runway),
  so every poll waits 5 s: polling as it was before pacing.

    .venv/bin/python -m bench.polling --jobs 300 --render-seconds 60

Only 127.0.0.1 is used; every run stops its stack (SIGINT, as Ctrl-C) and keeps its scratch
directory (``up.log``, ``var/``) for reading.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis

from backend import redis_keys
from bench.cpu_usage import Usage
from bench.genhook_up import create_account, running_up
from bench.genhook_up import log_warnings as warning_lines

#: ``genhook up`` gives its simulator this control token; ``/_sim/*`` requests carry it.
CONTROL_TOKEN = secrets.token_urlsafe(16)
CONTROL_HEADERS = {"Authorization": f"Bearer {CONTROL_TOKEN}"}
MODEL = "runway-gen4.5"
ROUTE_KEY = "runway/gen4.5"
#: The catalog route's ``poll_interval_seconds`` for Runway, and its typical render time.
ROUTE_MIN_INTERVAL_SECONDS = 5.0
CATALOG_TYPICAL_SECONDS = 90.0
#: Credits of one 5 s Runway job.
JOB_CREDITS = 5
RUNS = ("adaptive", "fixed")
#: The modules that pace polls, named with their git blob ids in the report: the tree may
#: hold uncommitted work, and this says which version a run measured.
PACING_MODULES = ("backend/jobs/poll.py", "backend/jobs/eta.py", "backend/render_history.py")
SETTLE_CHECK_SECONDS = 2.0


@dataclass(frozen=True)
class Stack:
    work_dir: Path
    base_url: str
    sim_url: str
    redis_url: str
    api_key: str
    process: subprocess.Popen[bytes]


@dataclass(frozen=True)
class Batch:
    """One batch's figures. Lags are in seconds; ``expected`` is what the route's history
    said before the batch (None: no history yet, so the catalog's typical time)."""

    run: str
    name: str
    jobs: int
    completed: int
    failed: int
    polls: int
    submits: int
    lags: list[float]
    submit_seconds: float
    wall_seconds: float
    busy: float | None
    expected: float | None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs per batch")
    parser.add_argument("--render-seconds", type=float, default=60.0)
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--port", type=int, default=8200, help="API port of the stack")
    parser.add_argument("--simulator-port", type=int, default=8290)
    parser.add_argument("--concurrency", type=int, default=8, help="submitting threads")
    args = parser.parse_args()
    print(
        f"{args.jobs} jobs of {MODEL} per batch, {args.render_seconds:g} s simulated renders; "
        f"route minimum {ROUTE_MIN_INTERVAL_SECONDS:g} s, catalog typical "
        f"{CATALOG_TYPICAL_SECONDS:g} s",
        flush=True,
    )
    print(HEADER, flush=True)
    results: list[Batch] = []
    for run in args.runs:
        extra = {} if run == "adaptive" else {"GENHOOK_POLL_MAX_INTERVAL_SECONDS": "5"}
        with running_stack(args, run, extra) as stack:
            print(f"{run}: stack in {stack.work_dir} ({extra or 'default settings'})", flush=True)
            print(f"{run}: code {code_versions()}", flush=True)
            names = ("seeded", "learned") if run == "adaptive" else ("seeded",)
            for name in names:
                results.append(run_batch(stack, args, run, name))
                print(format_row(results[-1], args.render_seconds), flush=True)
            print(f"{run}: {log_warnings(stack.work_dir)}", flush=True)
    print()
    print(HEADER)
    for batch in results:
        print(format_row(batch, args.render_seconds))


# -- the stack --------------------------------------------------------------------------------


@contextmanager
def running_stack(args: argparse.Namespace, run: str, extra: dict[str, str]) -> Iterator[Stack]:
    """``genhook up`` in a fresh scratch directory, stopped (SIGINT) on the way out."""
    work = Path(tempfile.mkdtemp(prefix=f"genhook-bench-polling-{run}-"))
    with running_up(
        work,
        port=args.port,
        simulator_port=args.simulator_port,
        render_seconds=args.render_seconds,
        extra_env={"GENHOOK_SIMULATOR_CONTROL_TOKEN": CONTROL_TOKEN, **extra},
    ) as up:
        key = create_account(up, "bench@example.com", JOB_CREDITS * args.jobs * 2 + 100)
        yield Stack(work, up.base_url, up.sim_url, up.redis_url, key, up.process)


def code_versions() -> str:
    """Git blob ids (as ``git hash-object`` prints them) of the pacing modules."""
    root = Path(__file__).resolve().parent.parent
    ids = []
    for name in PACING_MODULES:
        data = (root / name).read_bytes()
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False)
        ids.append(f"{Path(name).name} {blob.hexdigest()[:10]}")
    return ", ".join(ids)


def log_warnings(work: Path) -> str:
    bad = warning_lines(work)
    return f"{len(bad)} WARNING/ERROR lines in up.log" + (f"; first: {bad[0]}" if bad else "")


# -- one batch --------------------------------------------------------------------------------


def run_batch(stack: Stack, args: argparse.Namespace, run: str, name: str) -> Batch:
    expected = history_seconds(stack.redis_url)
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    with httpx.Client(base_url=stack.base_url, headers=headers, timeout=30) as api:
        before = sim_stats(stack.sim_url)
        machine_before = Usage.read().machine
        started = time.time()
        prompts = [f"genhook polling bench {run} {name} #{n}" for n in range(args.jobs)]
        ids = submit_all(stack, prompts, args.concurrency)
        submitted = time.time()
        wait_until_settled(stack, api, deadline=submitted + 3 * args.render_seconds + 300)
        after = sim_stats(stack.sim_url)
        machine_after = Usage.read().machine
        jobs = [job for job in all_jobs(api) if job["id"] in ids]
    renders = {r["prompt"]: r for r in sim_renders(stack.sim_url) if r["dialect"] == "runway"}
    done = [job for job in jobs if job["status"] == "completed"]
    lags = [
        parse_time(job["completed_at"])
        - (parse_time(renders[job["prompt"]]["created_at"]) + args.render_seconds)
        for job in done
    ]
    last = max((parse_time(job["completed_at"]) for job in done), default=time.time())
    busy = None
    if machine_before and machine_after:
        total = machine_after[1] - machine_before[1]
        busy = (machine_after[0] - machine_before[0]) / total if total else None
    return Batch(
        run=run,
        name=name,
        jobs=len(ids),
        completed=len(done),
        failed=sum(1 for job in jobs if job["status"] == "failed"),
        polls=after["polls"] - before["polls"],
        submits=after["submits"] - before["submits"],
        lags=lags,
        submit_seconds=submitted - started,
        wall_seconds=last - started,
        busy=busy,
        expected=expected,
    )


def submit_all(stack: Stack, prompts: list[str], concurrency: int) -> set[str]:
    """Submit every prompt (``concurrency`` threads); the accepted job ids."""

    def submit(chunk: list[str]) -> list[str]:
        headers = {"Authorization": f"Bearer {stack.api_key}"}
        ids = []
        with httpx.Client(base_url=stack.base_url, headers=headers, timeout=30) as client:
            for prompt in chunk:
                body = {"model": MODEL, "prompt": prompt, "duration": "5s", "aspect_ratio": "16:9"}
                answer = client.post("/v1/video/generations", json=body)
                answer.raise_for_status()
                ids.append(answer.json()["id"])
        return ids

    chunks = [prompts[n::concurrency] for n in range(concurrency)]
    with ThreadPoolExecutor(concurrency) as pool:
        return {job_id for ids in pool.map(submit, chunks) for job_id in ids}


def wait_until_settled(stack: Stack, api: httpx.Client, *, deadline: float) -> None:
    """Until no job of the account is pending or processing."""
    while time.time() < deadline:
        if stack.process.poll() is not None:
            raise SystemExit(f"genhook up stopped during the batch; see {stack.work_dir}/up.log")
        busy = [
            api.get("/v1/video/generations", params={"status": status, "limit": 1}).json()["data"]
            for status in ("pending", "processing")
        ]
        if not any(busy):
            return
        time.sleep(SETTLE_CHECK_SECONDS)
    raise SystemExit("jobs still in flight at the deadline")


def all_jobs(api: httpx.Client) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = api.get("/v1/video/generations", params=params).json()
        jobs += page["data"]
        if not page["has_more"]:
            return jobs
        params["cursor"] = page["next_cursor"]


def sim_stats(sim_url: str) -> dict[str, int]:
    answer = httpx.get(f"{sim_url}/_sim/stats", timeout=30, headers=CONTROL_HEADERS)
    answer.raise_for_status()
    stats: dict[str, int] = answer.json()
    return stats


def sim_renders(sim_url: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{sim_url}/_sim/renders", timeout=60, headers=CONTROL_HEADERS)
    answer.raise_for_status()
    renders: list[dict[str, Any]] = answer.json()
    return renders


def history_seconds(redis_url: str) -> float | None:
    """The moving average of the route's render times, as the workers left it in Redis."""
    client = redis.Redis.from_url(redis_url)
    try:
        mean = client.hget(redis_keys.render_history(MODEL, ROUTE_KEY), "mean")
    finally:
        client.close()
    return None if mean is None else float(mean)


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# -- report -----------------------------------------------------------------------------------

HEADER = (
    f"{'run':<9} {'batch':<8} {'jobs':>5} {'done':>5} {'failed':>6} {'polls':>6} "
    f"{'polls/job':>9} {'lag p50':>8} {'p95':>6} {'max':>6} {'submit s':>8} {'wall s':>7} "
    f"{'busy':>5}  history before"
)


def format_row(batch: Batch, render_seconds: float) -> str:
    p50, p95, worst = lag_figures(batch.lags)
    busy = "" if batch.busy is None else f"{100 * batch.busy:.0f}%"
    history = (
        f"none (catalog {CATALOG_TYPICAL_SECONDS:g} s)"
        if batch.expected is None
        else f"mean {batch.expected:.1f} s"
    )
    polls_per_job = batch.polls / batch.jobs if batch.jobs else 0.0
    return (
        f"{batch.run:<9} {batch.name:<8} {batch.jobs:>5} {batch.completed:>5} "
        f"{batch.failed:>6} {batch.polls:>6} {polls_per_job:>9.2f} {p50:>8.2f} {p95:>6.2f} "
        f"{worst:>6.2f} {batch.submit_seconds:>8.1f} {batch.wall_seconds:>7.1f} {busy:>5}  "
        f"{history}; renders {render_seconds:g} s, submits {batch.submits}"
    )


def lag_figures(lags: list[float]) -> tuple[float, float, float]:
    """p50, p95 (inclusive quantiles) and max; NaN when nothing completed."""
    if not lags:
        return float("nan"), float("nan"), float("nan")
    if len(lags) == 1:
        return lags[0], lags[0], lags[0]
    cuts = statistics.quantiles(lags, n=100, method="inclusive")
    return cuts[49], cuts[94], max(lags)


if __name__ == "__main__":
    main()
