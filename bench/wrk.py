"""Load with ``wrk`` (the Debian package) and read its report.

Why it exists: a Python client on the same two cores would cost more CPU than the server it
measures; wrk is C and an event loop. Requests that wrk cannot express on its command line
(a JSON POST with a bearer token, GETs spread over many job ids, a fixed number of requests)
are given as a small Lua script written next to the run.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

WRK = "wrk"
THREADS = 2

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run reports: answers in total, answers other than 2xx/3xx, socket
    errors, requests per second and latency percentiles (ms)."""

    requests: int
    non_2xx: int
    socket_errors: int
    seconds: float
    rate: float
    p50_ms: float
    p99_ms: float
    output: str

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx


def available() -> bool:
    return shutil.which(WRK) is not None


def version() -> str:
    out = subprocess.run([WRK, "-v"], capture_output=True, text=True).stdout
    return out.splitlines()[0].split(" Copyright")[0] if out else "wrk (version unknown)"


def lua_string(value: str) -> str:
    """A Lua string literal (JSON's escapes are valid Lua ones for what we write)."""
    return json.dumps(value)


def post_script(path: Path, *, body: str, bearer: str) -> Path:
    """POST ``body`` as JSON with a bearer token."""
    path.write_text("\n".join(_post_lines(body, bearer)) + "\n")
    return path


def counted_post_script(path: Path, *, body: str, bearer: str, count: int) -> tuple[Path, Path]:
    """The same POST, each of the ``THREADS`` threads stopping after its share of ``count``
    answers (rounded up) and then appending a line to the returned marker file: wrk itself
    runs for its whole ``-d`` unless interrupted (``run_counted`` interrupts it)."""
    share = -(-count // THREADS)
    marker = path.with_suffix(".done")
    marker.write_text("")
    lines = [
        *_post_lines(body, bearer),
        "local answered = 0",
        "function response(status, headers, body)",
        "  answered = answered + 1",
        f"  if answered == {share} then",
        f"    local f = io.open({lua_string(str(marker))}, 'a')",
        "    f:write('done\\n')",
        "    f:close()",
        "    wrk.thread:stop()",
        "  end",
        "end",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path, marker


def _post_lines(body: str, bearer: str) -> list[str]:
    return [
        'wrk.method = "POST"',
        f"wrk.body = {lua_string(body)}",
        'wrk.headers["Content-Type"] = "application/json"',
        f'wrk.headers["Authorization"] = {lua_string("Bearer " + bearer)}',
    ]


def get_script(path: Path, *, paths: list[str], bearer: str) -> Path:
    """GET the given paths round robin (each thread from its own starting point)."""
    listed = ", ".join(lua_string(p) for p in paths)
    path.write_text(
        f"local paths = {{{listed}}}\n"
        f'wrk.headers["Authorization"] = {lua_string("Bearer " + bearer)}\n'
        "local n = math.random(#paths)\n"
        "function request()\n"
        "  n = n % #paths + 1\n"
        "  return wrk.format(nil, paths[n])\n"
        "end\n"
    )
    return path


def run(
    url: str,
    *,
    connections: int,
    seconds: float,
    script: Path | None = None,
    timeout_seconds: float = 10.0,
) -> WrkResult:
    """One wrk run with ``--latency``; its parsed report."""
    command = _command(url, connections, seconds, script, timeout_seconds)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + timeout_seconds + 60
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse(done.stdout)


def run_counted(
    url: str, *, connections: int, script: Path, marker: Path, max_seconds: float
) -> WrkResult:
    """A run of a ``counted_post_script``: interrupted (SIGINT, after which wrk prints its
    report) once every thread has marked itself done, or after ``max_seconds``."""
    command = _command(url, connections, max_seconds, script, 10.0)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + max_seconds
    while process.poll() is None and time.monotonic() < deadline:
        if marker.read_text().count("done") >= THREADS:
            break
        time.sleep(0.05)
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err or out}")
    return parse(out)


def _command(
    url: str, connections: int, seconds: float, script: Path | None, timeout_seconds: float
) -> list[str]:
    command = [
        WRK,
        f"-t{THREADS}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_seconds:g}s",
        "--latency",
    ]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    return command


def parse(output: str) -> WrkResult:
    """The figures of wrk's ``--latency`` report."""
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if total is None or rate is None:
        raise RuntimeError(f"unreadable wrk report:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        seconds=float(total.group(2)) * _UNITS_MS[total.group(3)] / 1000,
        rate=float(rate.group(1)),
        p50_ms=_percentile(output, "50"),
        p99_ms=_percentile(output, "99"),
        output=output,
    )


def _percentile(output: str, which: str) -> float:
    found = re.search(rf"^\s+{which}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    return float(found.group(1)) * _UNITS_MS[found.group(2)] if found else float("nan")
