"""How long after a provider finishes a render does the user's webhook arrive?

Runs the same jobs twice through the real Kling adapter against the simulator's Kling
dialect: once polled only (``GENHOOK_PUBLIC_BASE_URL`` unset, a poll every
``--poll-interval`` seconds), once with provider callbacks (each task gets a callback URL;
polling stays on as a backstop every ``--backstop`` seconds). For each job it measures from
the moment the render finished at the provider (its creation time plus the render time) to
the moment the signed webhook reached a receiver. Everything runs on 127.0.0.1: the API on a
real port (providers call it back there), an in-process Dramatiq worker, the simulator, a
bundled Redis and a scratch SQLite file. Each mode runs in a child process of its own.

    .venv/bin/python -m bench.callbacks --jobs 40 --render-seconds 3
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

MODES = ("polled", "callbacks")
#: The simulator's control routes (``/_sim/*``) answer only requests bearing this.
CONTROL_TOKEN = secrets.token_urlsafe(16)
CONTROL_HEADERS = {"Authorization": f"Bearer {CONTROL_TOKEN}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--render-seconds", type=float, default=3.0)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--backstop", type=float, default=15.0)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args)))
        return
    print(
        f"{args.jobs} jobs per mode, {args.render_seconds:g} s renders, kling-v3 via Kling dialect"
    )
    print(
        f"poll interval {args.poll_interval:g} s; backstop poll with callbacks {args.backstop:g} s"
    )
    print(
        f"{'mode':<10} {'median':>8} {'p90':>8} {'max':>8} {'min':>8}  (seconds, finish -> webhook)"
    )
    for mode in MODES:
        argv = [sys.executable, "-m", "bench.callbacks", "--mode", mode, *_passthrough(args)]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        latencies = sorted(json.loads(out.strip().splitlines()[-1]))
        p90 = latencies[int(0.9 * (len(latencies) - 1))]
        print(
            f"{mode:<10} {statistics.median(latencies):8.3f} {p90:8.3f} "
            f"{latencies[-1]:8.3f} {latencies[0]:8.3f}"
        )


def _passthrough(args: argparse.Namespace) -> list[str]:
    return [
        f"--jobs={args.jobs}",
        f"--render-seconds={args.render_seconds}",
        f"--poll-interval={args.poll_interval}",
        f"--backstop={args.backstop}",
    ]


def run_mode(args: argparse.Namespace) -> list[float]:
    """One mode in this process: start everything, run the jobs, return the latencies."""
    from backend import bundled_redis

    work = Path(tempfile.mkdtemp(prefix="genhook-bench-callbacks-"))
    redis_process, redis_url = bundled_redis.start(work / "redis")
    # The actors bind Dramatiq's global broker to GENHOOK_REDIS_URL on first import.
    os.environ["GENHOOK_REDIS_URL"] = redis_url
    try:
        return _run_jobs(args, work, redis_url)
    finally:
        redis_process.terminate()
        redis_process.wait(10)


def _run_jobs(args: argparse.Namespace, work: Path, redis_url: str) -> list[float]:
    import dramatiq

    import backend.actors  # noqa: F401
    from backend.accounts import create_account
    from backend.api.app import create_app
    from backend.bundled_redis import free_port
    from backend.context import build_context, use_context
    from backend.secret_box import generate_key
    from backend.settings import Settings
    from backend.simulator.app import create_app as create_simulator
    from backend.simulator.credentials import all_provider_settings
    from backend.store.migrate import upgrade
    from bench.limits import GENEROUS_LIMITS
    from tests.support.wsgi_server import serve_wsgi as serve

    arrivals: dict[str, float] = {}

    def receiver(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        arrivals.setdefault(json.loads(body)["id"], time.time())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    api_port = free_port()
    with (
        serve(
            create_simulator(render_seconds=args.render_seconds, control_token=CONTROL_TOKEN)
        ) as sim,
        serve(receiver) as hooks,
    ):
        settings = Settings.model_validate(
            {
                "database_url": f"sqlite:///{work / 'genhook.db'}",
                "redis_url": redis_url,
                "secret_key": generate_key(),
                "webhook_allowed_networks": "127.0.0.0/8",
                "poll_interval_seconds": args.poll_interval,
                "provider_callback_poll_seconds": args.backstop,
                "public_base_url": f"http://127.0.0.1:{api_port}"
                if args.mode == "callbacks"
                else "",
                **all_provider_settings(sim),
                **GENEROUS_LIMITS,
            }
        )
        ctx = build_context(settings, broker=dramatiq.get_broker())
        upgrade(ctx.store.engine)
        use_context(ctx)
        key = create_account(ctx, "bench@example.com", credits=1_000_000).api_key
        worker = dramatiq.Worker(dramatiq.get_broker(), worker_threads=8)
        worker.start()
        try:
            with serve(create_app(ctx), port=api_port) as api:
                return _measure(args, api, key, hooks, sim, arrivals)
        finally:
            worker.stop()
            use_context(None)
            ctx.close()


def _measure(
    args: argparse.Namespace,
    api: str,
    key: str,
    hooks: str,
    sim: str,
    arrivals: dict[str, float],
) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "kling-v3", "prompt": "Bench", "webhook_url": f"{hooks}/hook"}
    with httpx.Client(timeout=10) as client:
        ids = []
        for _ in range(args.jobs):
            answer = client.post(f"{api}/v1/video/generations", json=body, headers=headers)
            answer.raise_for_status()
            ids.append(answer.json()["id"])
            time.sleep(0.05)  # spread the renders' ends over the poll interval
        deadline = time.time() + args.render_seconds + args.backstop + 30
        while len(arrivals) < len(ids) and time.time() < deadline:
            time.sleep(0.05)
        renders = {
            r["reference"]: r
            for r in client.get(f"{sim}/_sim/renders", headers=CONTROL_HEADERS).json()
        }
    latencies = []
    for job_id in ids:
        if job_id not in arrivals:
            raise SystemExit(f"no webhook for {job_id} in time")
        created = datetime.fromisoformat(renders[job_id]["created_at"]).timestamp()
        latencies.append(arrivals[job_id] - (created + args.render_seconds))
    return latencies


if __name__ == "__main__":
    main()
