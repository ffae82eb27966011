"""The measurements of ``bench/run.py``, one function per figure of issue 12.

Why it exists: each figure is taken the same way every run, through genhook's public
interfaces only (the HTTP API, the ``genhook`` CLI, ``GENHOOK_*`` settings, the simulator's
``/_sim/*`` routes), so that the backend can change underneath without the bench changing.
Load comes from wrk (``bench/wrk.py``); webhooks go to ``bench/receiver.py``; CPU seconds
per process role come from ``/proc`` (``bench/stack_processes.py``).
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import wrk
from bench.cpu_usage import Usage
from bench.genhook_up import UpStack
from bench.receiver import Receiver
from bench.stack_processes import cpu_by_role, roles_under

GENERATIONS = "/v1/video/generations"
#: Text-only submissions; one webhook (the terminal one) per job when a URL is given.
SUBMIT_MODEL = "seedance-1-pro"
#: Runway never calls back (it is polled); Kling calls back on every status change.
POLLED_MODEL = "runway-gen4.5"
CALLBACK_MODEL = "kling-v3"
STATUS_P99_LIMIT_MS = 50.0
HELLO_APP = "bench.hello:app"
HELLO_KEEPALIVE_SECONDS = 5
PORT_RANGE = range(8400, 8500)
SETTLE_POLL_SECONDS = 0.5
#: Beyond one render time of submitting, how long to keep trying to reach a checkpoint.
PLATEAU_MARGIN_SECONDS = 30.0

Log = Callable[[str], None]


def job_body(model: str, label: str, webhook_url: str | None = None) -> str:
    body: dict[str, Any] = {
        "model": model,
        "prompt": f"genhook bench {label}: product reveal on white",
        "duration": "5s",
    }
    if webhook_url:
        body["webhook_url"] = webhook_url
    return json.dumps(body)


def free_port(taken: set[int]) -> int:
    """A port of this helper's range (8400-8499) that nothing listens on."""
    for port in PORT_RANGE:
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise SystemExit(f"no free port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


# -- the ceilings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One wrk run, and the CPU seconds each role of the server used meanwhile."""

    result: wrk.WrkResult
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        """Answers per second that were 2xx or 3xx."""
        r = self.result
        return r.rate * r.ok / r.requests if r.requests else 0.0

    def cpu_ms(self, role: str) -> float:
        """CPU milliseconds of ``role`` per answer."""
        return 1000 * self.cpu[role] / self.result.requests if self.result.requests else math.nan


def measured(root_pid: int, run: Callable[[], wrk.WrkResult]) -> Load:
    """``run()``, with the CPU seconds of the processes under ``root_pid`` by role."""
    roles = roles_under(root_pid)
    before = Usage.read()
    result = run()
    return Load(result, cpu_by_role(before, Usage.read(), roles))


@dataclass(frozen=True)
class Hello:
    url: str
    pid: int


@contextmanager
def running_hello(
    port: int, *, workers: int, threads: int, worker_class: str = "gthread"
) -> Iterator[Hello]:
    """``bench/hello.py`` under gunicorn (by default gthread, keep-alive), as many workers
    and threads as genhook's API (its worker processes count as role ``api``)."""
    command = [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--worker-class", worker_class, "--threads", str(threads),
        "--keep-alive", str(HELLO_KEEPALIVE_SECONDS), "--log-level", "warning",
        "--no-control-socket", HELLO_APP,
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/", timeout=1, trust_env=False).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the bare Falcon app did not start") from None
                time.sleep(0.2)
        yield Hello(url, process.pid)
    finally:
        process.terminate()
        process.wait(30)


@dataclass(frozen=True)
class Ceiling:
    get: Load
    post: Load


def measure_hello(hello: Hello, work: Path, *, connections: int, seconds: float) -> Ceiling:
    url = hello.url
    get = measured(
        hello.pid,
        lambda: wrk.run(url + GENERATIONS + "/hello", connections=connections, seconds=seconds),
    )
    script = wrk.post_script(
        work / "hello-post.lua", body=job_body(SUBMIT_MODEL, "hello"), bearer="hello"
    )
    post = measured(
        hello.pid,
        lambda: wrk.run(url + GENERATIONS, connections=connections, seconds=seconds, script=script),
    )
    return Ceiling(get, post)


# -- the API through genhook up ---------------------------------------------------------------


@dataclass
class Api:
    """An account on a running stack, driven over HTTP."""

    stack: UpStack
    key: str
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(
            base_url=self.stack.base_url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=60,
            trust_env=False,
        )

    def credits(self) -> int:
        answer = self.client.get("/v1/account")
        answer.raise_for_status()
        return int(answer.json()["credits"])

    def submit_one(self, body: str) -> str:
        answer = self.client.post(
            GENERATIONS, content=body, headers={"Content-Type": "application/json"}
        )
        answer.raise_for_status()
        return str(answer.json()["id"])

    def job_ids(self, status: str | None, most: int) -> list[str]:
        """Up to ``most`` job ids, newest first (``status``: only those)."""
        ids: list[str] = []
        params: dict[str, Any] = {"limit": 100}
        if status:
            params["status"] = status
        while len(ids) < most:
            answer = self.client.get(GENERATIONS, params=params)
            answer.raise_for_status()
            page = answer.json()
            ids += [job["id"] for job in page["data"]]
            if not page["has_more"]:
                break
            params["cursor"] = page["next_cursor"]
        return ids[:most]

    def busy(self) -> bool:
        """Whether any job of the account is pending or processing."""
        return any(self.job_ids(status, 1) for status in ("pending", "processing"))

    def wait_until_idle(self, max_seconds: float) -> float:
        """Until no job is pending or processing (the next figure should not pay for this
        one's backlog); the seconds it took."""
        started = time.monotonic()
        while self.busy():
            if time.monotonic() - started > max_seconds:
                raise SystemExit(f"jobs still in flight after {max_seconds:g} s")
            if self.stack.process.poll() is not None:
                raise SystemExit(f"genhook up stopped; see {self.stack.work_dir}/up.log")
            time.sleep(SETTLE_POLL_SECONDS)
        return time.monotonic() - started

    def sim_stats(self) -> dict[str, int]:
        answer = httpx.get(
            self.stack.sim_url + "/_sim/stats",
            headers=self.stack.control_headers,
            timeout=30,
            trust_env=False,
        )
        answer.raise_for_status()
        stats: dict[str, int] = answer.json()
        return stats

    def close(self) -> None:
        self.client.close()


def measure_submit(api: Api, work: Path, *, connections: int, seconds: float) -> Load:
    """Figure 1: ``POST /v1/video/generations`` with wrk, the whole stack running."""
    script = wrk.post_script(
        work / "submit.lua", body=job_body(SUBMIT_MODEL, "submit"), bearer=api.key
    )
    url = api.stack.base_url + GENERATIONS
    return measured(
        api.stack.process.pid,
        lambda: wrk.run(url, connections=connections, seconds=seconds, script=script),
    )


def seed_jobs(api: Api, work: Path, count: int, *, connections: int) -> None:
    """About ``count`` jobs (wrk may send up to ``connections`` more)."""
    script, marker = wrk.counted_post_script(
        work / "seed.lua", body=job_body(SUBMIT_MODEL, "seed"), bearer=api.key, count=count
    )
    wrk.run_counted(
        api.stack.base_url + GENERATIONS,
        connections=connections,
        script=script,
        marker=marker,
        max_seconds=600,
    )


def status_script(api: Api, work: Path, ids: list[str], name: str) -> Path:
    return wrk.get_script(
        work / f"{name}.lua", paths=[f"{GENERATIONS}/{i}" for i in ids], bearer=api.key
    )


def measure_status(
    api: Api, work: Path, ids: list[str], *, connections: int, seconds: float
) -> Load:
    """Figure 2: ``GET /v1/video/generations/{id}`` over existing jobs, with wrk."""
    script = status_script(api, work, ids, "status")
    url = api.stack.base_url
    return measured(
        api.stack.process.pid,
        lambda: wrk.run(url, connections=connections, seconds=seconds, script=script),
    )


@dataclass(frozen=True)
class Lifecycles:
    jobs: int
    seconds: float
    received: int
    distinct: int
    submit: wrk.WrkResult
    #: CPU seconds per role of the stack, from the first submission to the last webhook.
    cpu: dict[str, float]

    @property
    def worker_cpu(self) -> float:
        return self.cpu["worker"]

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0


def submitted_since(api: Api, credits_before: int, price: int) -> int:
    """Jobs charged since ``credits_before``, once the balance holds still: wrk does not
    count the answers it was still waiting for when it stopped, the ledger does."""
    charged = (credits_before - api.credits()) // price
    while True:
        time.sleep(SETTLE_POLL_SECONDS)
        again = (credits_before - api.credits()) // price
        if again == charged:
            return charged
        charged = again


def price_of(api: Api, body: str) -> int:
    """What one such job costs: one submission, measured on the balance."""
    before = api.credits()
    api.submit_one(body)
    return before - api.credits()


def wait_for_webhooks(
    receiver: Receiver, path: str, count: int, *, max_seconds: float, stack: UpStack
) -> dict[str, Any]:
    """Until ``count`` POSTs reached ``path``; the receiver's figures for it."""
    deadline = time.monotonic() + max_seconds
    while True:
        got = receiver.stats().get(path, {"posts": 0, "distinct_ids": 0})
        if got["posts"] >= count:
            return got
        if time.monotonic() > deadline:
            raise SystemExit(f"{got['posts']} of {count} webhooks to {path} in {max_seconds:g} s")
        if stack.process.poll() is not None:
            raise SystemExit(f"genhook up stopped; see {stack.work_dir}/up.log")
        time.sleep(0.05)


def measure_lifecycles(
    api: Api, receiver: Receiver, work: Path, label: str, *, jobs: int, connections: int
) -> Lifecycles:
    """Figure 3: ``jobs`` submissions with a webhook URL, renders instant; from the first
    submission to the last signed webhook at the receiver."""
    path = f"/lifecycle/{label}"
    body = job_body(SUBMIT_MODEL, "lifecycle", receiver.url + path)
    price = price_of(api, body)
    wait_for_webhooks(receiver, path, 1, max_seconds=60, stack=api.stack)
    script, marker = wrk.counted_post_script(
        work / f"lifecycle-{label}.lua", body=body, bearer=api.key, count=jobs
    )
    roles = roles_under(api.stack.process.pid)
    before_credits = api.credits()
    before = Usage.read()
    started = time.time()
    submit = wrk.run_counted(
        api.stack.base_url + GENERATIONS,
        connections=connections,
        script=script,
        marker=marker,
        max_seconds=600,
    )
    charged = submitted_since(api, before_credits, price)
    got = wait_for_webhooks(receiver, path, charged + 1, max_seconds=600, stack=api.stack)
    after = Usage.read()
    return Lifecycles(
        jobs=charged,
        seconds=float(got["last"]) - started,
        received=got["posts"] - 1,
        distinct=got["distinct_ids"] - 1,
        submit=submit,
        cpu=cpu_by_role(before, after, roles),
    )


# -- delivery ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    rate: float
    baseline: float
    ratio: float
    ok: bool
    output: str


def measure_delivery(count: int, database_url: str | None) -> Delivery:
    """Figure 4: ``bench/deliver.py`` as it is, in a child process; its report's figures."""
    command = [sys.executable, "-m", "bench.deliver", "--count", str(count)]
    if database_url:
        command += ["--database-url", database_url]
    done = subprocess.run(
        command,
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    out = done.stdout
    rate = re.search(r"^genhook\s+\d+ delivered in [\d.]+ s: ([\d,.]+) deliveries/s", out, re.M)
    baseline = re.search(r"^baseline\s+.*: ([\d,.]+) POSTs/s", out, re.M)
    ratio = re.search(r"^ratio\s+deliveries/s / POSTs/s = ([\d.]+)", out, re.M)
    if rate is None or baseline is None or ratio is None:
        raise SystemExit(f"unreadable bench/deliver.py report:\n{out}\n{done.stderr[-3000:]}")
    return Delivery(
        rate=float(rate.group(1).replace(",", "")),
        baseline=float(baseline.group(1).replace(",", "")),
        ratio=float(ratio.group(1)),
        ok=done.returncode == 0,
        output=out,
    )


# -- many renders in flight -------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    target: int
    in_flight: int
    #: Status reads with as many connections as the other figures (saturating the API).
    status: wrk.WrkResult | None
    #: Status reads by a few steady readers, each reading again as soon as answered: the
    #: latency a polling client sees while the API is not saturated by the readers.
    steady: wrk.WrkResult | None = None


@dataclass(frozen=True)
class PerJob:
    """Provider calls and worker CPU per job, from submission to the last webhook."""

    model: str
    jobs: int
    polls: int
    submits: int
    #: CPU seconds per role of the stack (``bench/stack_processes.py``) over the same span.
    cpu: dict[str, float]
    seconds: float

    @property
    def worker_cpu(self) -> float:
        return self.cpu["worker"]

    @property
    def polls_per_job(self) -> float:
        return self.polls / self.jobs if self.jobs else float("nan")

    @property
    def cpu_per_job(self) -> float:
        return self.worker_cpu / self.jobs if self.jobs else float("nan")


@dataclass(frozen=True)
class InFlight:
    checkpoints: list[Checkpoint]
    polled: PerJob
    callbacks: PerJob | None

    @property
    def largest_under_limit(self) -> int:
        """The largest in-flight count whose saturating status reads stayed under the p99
        limit."""
        return _largest_under_limit([(c.in_flight, c.status) for c in self.checkpoints])

    @property
    def largest_under_limit_steady(self) -> int:
        """The same for the steady readers."""
        return _largest_under_limit([(c.in_flight, c.steady) for c in self.checkpoints])


def _largest_under_limit(reads: list[tuple[int, wrk.WrkResult | None]]) -> int:
    good = [n for n, r in reads if r is not None and r.p99_ms < STATUS_P99_LIMIT_MS]
    return max(good, default=0)


def build_in_flight(
    api: Api,
    receiver: Receiver,
    work: Path,
    *,
    checkpoints: list[int],
    connections: int,
    readers: int,
    status_seconds: float,
    max_seconds: float,
    render_seconds: float,
    log: Log,
) -> tuple[list[Checkpoint], PerJob]:
    """Figure 5, polled: submit Runway jobs (no callbacks) until each checkpoint is in
    flight, read statuses there with wrk; then wait for every webhook and count."""
    path = "/in-flight/polled"
    body = job_body(POLLED_MODEL, "in flight", receiver.url + path)
    roles = roles_under(api.stack.process.pid)
    stats_before = api.sim_stats()
    usage_before = Usage.read()
    started = time.time()
    price = price_of(api, body)
    credits_start = api.credits() + price
    deadline = time.monotonic() + max_seconds
    done: list[Checkpoint] = []
    for n, target in enumerate(checkpoints):
        # Submitting for longer than a render lasts gains nothing: jobs then finish as
        # fast as they are submitted.
        give_up = min(deadline, time.monotonic() + render_seconds + PLATEAU_MARGIN_SECONDS)
        while True:
            submitted = submitted_since(api, credits_start, price)
            finished = receiver.stats().get(path, {"posts": 0})["posts"]
            in_flight = submitted - finished
            if in_flight >= target or time.monotonic() > give_up:
                break
            script, marker = wrk.counted_post_script(
                work / f"in-flight-{n}.lua", body=body, bearer=api.key, count=target - in_flight
            )
            wrk.run_counted(
                api.stack.base_url + GENERATIONS,
                connections=connections,
                script=script,
                marker=marker,
                max_seconds=max(1.0, give_up - time.monotonic()),
            )
        if in_flight < target:
            log(f"in flight: {in_flight:,} of {target:,}, no more while submitting; stopped there")
            done.append(Checkpoint(target, in_flight, None))
            break
        ids = api.job_ids("processing", 500) or api.job_ids(None, 500)
        script = status_script(api, work, ids, f"in-flight-status-{n}")
        status, steady = (
            wrk.run(api.stack.base_url, connections=count, seconds=status_seconds, script=script)
            for count in (connections, readers)
        )
        after = submitted_since(api, credits_start, price)
        after -= receiver.stats().get(path, {"posts": 0})["posts"]
        done.append(Checkpoint(target, min(in_flight, after), status, steady))
        for name, result in ((f"{connections} connections", status), (f"{readers}", steady)):
            log(
                f"in flight: {in_flight:,} (checkpoint {target:,}), status reads by {name}: "
                f"{result.rate:,.0f}/s, p99 {result.p99_ms:.1f} ms, {result.non_2xx} "
                f"non-2xx, {result.socket_errors} socket errors"
            )
    jobs = submitted_since(api, credits_start, price)
    wait_for_webhooks(receiver, path, jobs, max_seconds=render_seconds * 3 + 600, stack=api.stack)
    stats_after = api.sim_stats()
    usage_after = Usage.read()
    return done, PerJob(
        model=POLLED_MODEL,
        jobs=jobs,
        polls=stats_after["polls"] - stats_before["polls"],
        submits=stats_after["submits"] - stats_before["submits"],
        cpu=cpu_by_role(usage_before, usage_after, roles),
        seconds=time.time() - started,
    )


def measure_callbacks(
    api: Api, receiver: Receiver, work: Path, *, jobs: int, connections: int, render_seconds: float
) -> PerJob:
    """Figure 5, with callbacks: ``jobs`` Kling jobs at once; provider calls and worker CPU
    per job until every webhook arrived."""
    path = "/in-flight/callbacks"
    body = job_body(CALLBACK_MODEL, "callbacks", receiver.url + path)
    roles = roles_under(api.stack.process.pid)
    stats_before = api.sim_stats()
    usage_before = Usage.read()
    started = time.time()
    price = price_of(api, body)
    credits_start = api.credits() + price
    if jobs > 1:
        script, marker = wrk.counted_post_script(
            work / "callbacks.lua", body=body, bearer=api.key, count=jobs - 1
        )
        wrk.run_counted(
            api.stack.base_url + GENERATIONS,
            connections=connections,
            script=script,
            marker=marker,
            max_seconds=600,
        )
    submitted = submitted_since(api, credits_start, price)
    wait_for_webhooks(
        receiver, path, submitted, max_seconds=render_seconds * 3 + 600, stack=api.stack
    )
    stats_after = api.sim_stats()
    usage_after = Usage.read()
    return PerJob(
        model=CALLBACK_MODEL,
        jobs=submitted,
        polls=stats_after["polls"] - stats_before["polls"],
        submits=stats_after["submits"] - stats_before["submits"],
        cpu=cpu_by_role(usage_before, usage_after, roles),
        seconds=time.time() - started,
    )
