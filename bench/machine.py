"""What a benchmark ran on and which code it measured, for its report.

Why it exists: a figure without its machine, its commit and its command cannot be compared
with the next one. ``bench/deliver.py`` and ``bench/run.py`` print these lines.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LIBRARIES = ("falcon", "gunicorn", "dramatiq", "sqlalchemy", "psycopg", "redis", "httpx")


def describe_machine() -> list[tuple[str, str]]:
    """(label, text) lines: CPUs and their model, memory, load, Python, libraries, commit."""
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return [
        ("machine", f"{os.cpu_count()} CPUs (os.cpu_count), {cpu_model()}; load average {load}"),
        ("memory", memory_total()),
        ("python", f"{platform.python_version()} on {platform.platform()}"),
        ("libraries", library_versions()),
        ("genhook", git_revision()),
    ]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return f"{kib / 1024 / 1024:.1f} GiB (MemTotal {kib:,} kB)"
    except (OSError, ValueError):
        pass
    return "unknown"


def library_versions() -> str:
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(versions)


def git_revision() -> str:
    """``commit <short id>``, plus a note when tracked files differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return f"commit {commit}" + (" + uncommitted changes" if dirty else "")
