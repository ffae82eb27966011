"""The processes of a running ``genhook up``, by role, and their CPU seconds.

Why it exists: "worker CPU-seconds per job" needs the worker's processes told apart from the
API's, the scheduler's and the simulator's. They are all descendants of the ``genhook up``
process; the role comes from each one's command line (``backend/commands.py`` builds them).
Linux ``/proc`` only; elsewhere nothing is found.
"""

from __future__ import annotations

from pathlib import Path

from bench.cpu_usage import Usage

ROLES = ("api", "worker", "scheduler", "simulator", "redis")


def role_of(cmdline: str) -> str | None:
    if "dramatiq" in cmdline:
        return "worker"
    if "backend.simulator" in cmdline:
        return "simulator"
    if "gunicorn" in cmdline:
        return "api"
    if "scheduler" in cmdline:
        return "scheduler"
    if "redis-server" in cmdline:
        return "redis"
    return None


def roles_under(root_pid: int) -> dict[int, str]:
    """Every descendant of ``root_pid`` that has a role, with that role."""
    parents: dict[int, int] = {}
    cmdlines: dict[int, str] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        pid = int(entry.name)
        parents[pid] = int(stat[stat.rindex(")") + 2 :].split()[1])
        cmdlines[pid] = cmdline
    found: dict[int, str] = {}
    for pid in parents:
        ancestor = parents.get(pid)
        while ancestor is not None and ancestor != root_pid and ancestor > 1:
            ancestor = parents.get(ancestor)
        if ancestor == root_pid and (role := role_of(cmdlines[pid])) is not None:
            found[pid] = role
    return found


def cpu_by_role(before: Usage, after: Usage, roles: dict[int, str]) -> dict[str, float]:
    """CPU seconds each role used between two readings (processes in ``roles`` only)."""
    used = dict.fromkeys(ROLES, 0.0)
    for pid, role in roles.items():
        if pid in after.processes:
            start = before.processes.get(pid, (None, 0.0))[1]
            used[role] += after.processes[pid][1] - start
    return used
