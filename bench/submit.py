"""Submission throughput benchmark: how many ``POST /v1/video/generations`` a stack accepts.

Why it exists: submitting a job is the one hot write path of genhook (authenticate the key,
debit the credits and insert the job in one transaction, cache the status, enqueue). This
script drives an already RUNNING stack with concurrent submissions and reports how many were
accepted (202) per second and how long each took, so that changes to that path, the database
or the number of API workers can be compared with figures rather than impressions.

How it works: ``--concurrency`` worker threads, each with its own keep-alive ``httpx.Client``
(at most one TCP connection per thread), take request numbers from a shared counter until
``--requests`` have been sent; gunicorn's sync workers, genhook's default, answer
``Connection: close``, so against them every request opens a new connection anyway.
``--warmup`` requests run first, the same way, and are not counted. Latency is measured per
request with ``time.perf_counter`` and its percentiles are taken over every request that got
an HTTP answer (whatever the status); requests that got none (timeouts, refused connections)
are counted by exception name. Every run stops by itself: the request count is bounded, and
no request starts after ``--max-seconds``.

How to run it (only against a stack you run yourself; every accepted job is charged)::

    # in another shell (one account's writes and jobs in flight are limited by default)
    GENHOOK_RATE_LIMIT_WRITES=1000000/second GENHOOK_MAX_JOBS_IN_FLIGHT=10000000 \
        genhook up --port 8100                  # prints "genhook is up"
    genhook accounts create --email bench@example.com --credits 10000000
    GENHOOK_BENCH_API_KEY=<api key> python bench/submit.py \\
        --base-url http://127.0.0.1:8100 --concurrency 32 --requests 3000

Exit status: 0 when at least one submission was accepted, 1 otherwise (including when the
warm-up got no 202 at all, which usually means a wrong key or URL; the run stops there).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import httpx

ENDPOINT = "/v1/video/generations"
ACCEPTED = 202
API_KEY_ENV = "GENHOOK_BENCH_API_KEY"


@dataclass(frozen=True)
class Config:
    base_url: str
    api_key: str
    concurrency: int
    requests: int
    warmup: int
    model: str
    webhook_url: str | None
    max_seconds: float
    timeout: float


@dataclass
class Sample:
    """One request's outcome: an HTTP status, or the name of the transport error."""

    outcome: str
    latency_ms: float | None


@dataclass
class Phase:
    """A batch of requests shared by the worker threads: a bounded counter and the results."""

    total: int
    deadline: float
    label: str
    _counter: Iterator[int] = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    samples: list[Sample] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._counter = itertools.count()

    def next_index(self) -> int | None:
        """The next request number, or ``None`` once the count or the time is used up."""
        with self._lock:
            index = next(self._counter)
        if index >= self.total or time.monotonic() >= self.deadline:
            return None
        return index

    def record(self, batch: list[Sample]) -> None:
        with self._lock:
            self.samples.extend(batch)


@dataclass(frozen=True)
class Report:
    total: int
    outcomes: Counter[str]
    wall_seconds: float
    latencies_ms: list[float]

    @property
    def accepted(self) -> int:
        return self.outcomes.get(str(ACCEPTED), 0)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        description="Concurrent POST /v1/video/generations against a running genhook stack."
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument(
        "--api-key", default=os.environ.get(API_KEY_ENV), help=f"default: ${API_KEY_ENV}"
    )
    parser.add_argument("--concurrency", type=_positive_int, default=32)
    parser.add_argument("--requests", type=_positive_int, default=2000)
    parser.add_argument("--warmup", type=_non_negative_int, default=50, help="not counted")
    parser.add_argument("--model", default="seedance-1-pro")
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument(
        "--max-seconds", type=float, default=300.0, help="safety limit for the whole run"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error(f"--api-key is required (or set {API_KEY_ENV})")
    if args.max_seconds <= 0 or args.timeout <= 0:
        parser.error("--max-seconds and --timeout must be positive")
    return Config(
        base_url=args.base_url.rstrip("/"),
        api_key=args.api_key,
        concurrency=args.concurrency,
        requests=args.requests,
        warmup=args.warmup,
        model=args.model,
        webhook_url=args.webhook_url,
        max_seconds=args.max_seconds,
        timeout=args.timeout,
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def request_body(config: Config, label: str, index: int) -> dict[str, object]:
    body: dict[str, object] = {
        "model": config.model,
        "prompt": f"genhook bench {label} #{index}: product reveal on white",
        "duration": "5s",
        "metadata": {"bench": label, "n": str(index)},
    }
    if config.webhook_url:
        body["webhook_url"] = config.webhook_url
    return body


def new_client(config: Config) -> httpx.Client:
    return httpx.Client(
        base_url=config.base_url,
        headers={"Authorization": f"Bearer {config.api_key}"},
        timeout=config.timeout,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )


def send_one(client: httpx.Client, config: Config, label: str, index: int) -> Sample:
    body = request_body(config, label, index)
    started = time.perf_counter()
    try:
        response = client.post(ENDPOINT, json=body)
    except httpx.HTTPError as exc:
        return Sample(type(exc).__name__, None)
    elapsed_ms = (time.perf_counter() - started) * 1000
    return Sample(str(response.status_code), elapsed_ms)


def worker(config: Config, phase: Phase) -> None:
    batch: list[Sample] = []
    with new_client(config) as client:
        while (index := phase.next_index()) is not None:
            batch.append(send_one(client, config, phase.label, index))
    phase.record(batch)


def run_phase(config: Config, phase: Phase) -> Report:
    threads = [
        threading.Thread(target=worker, args=(config, phase), name=f"bench-{n}", daemon=True)
        for n in range(min(config.concurrency, phase.total))
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        # Bounded join: a thread may outlive the deadline by at most one request timeout.
        thread.join(timeout=max(0.0, phase.deadline - time.monotonic()) + config.timeout + 5)
    wall = time.perf_counter() - started
    samples = list(phase.samples)
    latencies = [s.latency_ms for s in samples if s.latency_ms is not None]
    return Report(len(samples), Counter(s.outcome for s in samples), wall, latencies)


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 / p90 / p99 / max in the same unit as ``values`` (empty dict if no values)."""
    if not values:
        return {}
    ordered = sorted(values)
    if len(ordered) == 1:
        only = ordered[0]
        return {"p50": only, "p90": only, "p99": only, "max": only}
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98], "max": ordered[-1]}


def format_report(config: Config, report: Report) -> str:
    others = {k: v for k, v in report.outcomes.items() if k != str(ACCEPTED)}
    other_text = ", ".join(f"{k}: {v}" for k, v in sorted(others.items())) or "none"
    rate = report.accepted / report.wall_seconds if report.wall_seconds > 0 else 0.0
    lines = [
        f"target            {config.base_url}{ENDPOINT}  (model {config.model})",
        f"concurrency       {config.concurrency}",
        f"total requests    {report.total}",
        f"accepted (202)    {report.accepted}",
        f"other statuses    {other_text}",
        f"wall time         {report.wall_seconds:.2f} s",
        f"accepted jobs/s   {rate:.1f}",
    ]
    stats = percentiles(report.latencies_ms)
    if stats:
        lines.append(
            "latency (ms)      "
            + "  ".join(f"{name} {value:.1f}" for name, value in stats.items())
            + f"  (over {len(report.latencies_ms)} HTTP responses)"
        )
    if report.total < config.requests:
        lines.append(f"stopped early     --max-seconds {config.max_seconds:g} reached")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    deadline = time.monotonic() + config.max_seconds
    if config.warmup:
        warm = run_phase(config, Phase(config.warmup, deadline, "warmup"))
        if warm.accepted == 0:
            print(f"warm-up got no 202 ({dict(warm.outcomes)}); check --base-url and the key.")
            return 1
        print(f"warm-up           {warm.total} requests, {warm.accepted} accepted (not counted)")
    report = run_phase(config, Phase(config.requests, deadline, "run"))
    print(format_report(config, report))
    return 0 if report.accepted else 1


if __name__ == "__main__":
    sys.exit(main())
