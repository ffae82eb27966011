"""CPU seconds per process around a timed phase, from Linux ``/proc``.

Why it exists: a throughput figure means little without knowing which process was busy. The
benchmark reads every process's CPU time before and after a phase, attributes it to the
processes of the run (the bench itself, the receiver, Redis, the PostgreSQL backends that
serve only the bench), and reports what else used the machine meanwhile. Elsewhere than on
Linux nothing is measured and the report says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """CPU seconds so far of every process, and of the whole machine, at one instant (Linux
    ``/proc``; empty elsewhere). Processes are named by ``comm``, PostgreSQL backends by
    their title (``postgres: <user> <database> <client> <state>``)."""

    processes: dict[int, tuple[str, float]]
    #: (busy, total) CPU seconds of the machine.
    machine: tuple[float, float] | None

    @classmethod
    def read(cls) -> Usage:
        processes: dict[int, tuple[str, float]] = {}
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                stat = (entry / "stat").read_text()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                if name == "postgres":
                    name = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except (OSError, ValueError, UnicodeDecodeError):
                continue  # the process has just ended
            fields = stat[stat.rindex(")") + 2 :].split()
            cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_SECOND
            processes[int(entry.name)] = (name, cpu)
        return cls(processes, _machine_cpu_seconds())


def _machine_cpu_seconds() -> tuple[float, float] | None:
    try:
        line = Path("/proc/stat").read_text().split("\n", 1)[0]
    except OSError:
        return None
    values = [int(v) for v in line.split()[1:9]]  # user .. steal; guest time is in user already
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values) / CLOCK_TICKS_PER_SECOND
    return total - idle / CLOCK_TICKS_PER_SECOND, total


@dataclass(frozen=True)
class Roles:
    """Which processes are part of the run: this one, the receiver, and Redis and PostgreSQL
    backends when they serve only the bench."""

    receiver_pid: int
    redis_pid: int | None
    postgres_database: str | None

    def of(self, pid: int, name: str) -> str | None:
        if pid == os.getpid():
            return "bench"
        if pid == self.receiver_pid:
            return "receiver"
        if pid == self.redis_pid:
            return "redis"
        database = self.postgres_database
        if database and name.startswith("postgres: ") and f" {database} " in name:
            return "postgres"
        return None


def usage_text(before: Usage, after: Usage, roles: Roles, bench_role: str) -> str:
    """CPU seconds over a phase per process of the run, and what else used the machine."""
    if not after.processes or before.machine is None or after.machine is None:
        return "CPU: not measured (no /proc)"
    ours: dict[str, float] = {bench_role: 0.0, "receiver": 0.0}
    others: dict[str, float] = {}
    for pid, (name, cpu) in after.processes.items():
        used = cpu - before.processes.get(pid, (name, 0.0))[1]
        role = roles.of(pid, name)
        if role is None:
            others[name] = others.get(name, 0.0) + used
        else:
            role = bench_role if role == "bench" else role
            ours[role] = ours.get(role, 0.0) + used
    busy = after.machine[0] - before.machine[0]
    total = after.machine[1] - before.machine[1]
    top = sorted(((cpu, name) for name, cpu in others.items() if cpu >= 0.05), reverse=True)[:3]
    text = "CPU s: " + ", ".join(f"{role} {cpu:.2f}" for role, cpu in ours.items())
    text += f"; other processes {sum(others.values()):.2f}"
    if top:
        text += " (" + ", ".join(f"{name[:24]} {cpu:.2f}" for cpu, name in top) + ")"
    unattributed = busy - sum(ours.values()) - sum(others.values())
    text += f", not attributed {max(0.0, unattributed):.2f}"
    if total:
        text += f"; machine busy {100 * busy / total:.0f}%"
    return text
