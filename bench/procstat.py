"""What Linux's /proc says about this process, its threads and the host: the benches' shared
readers of resident set, CPU time and hypervisor steal."""

from __future__ import annotations

import os
import re
import threading


def status_kb(field: str, pid: int | str = "self") -> int:
    """A field of /proc/<pid>/status in kB (VmRSS: now, VmHWM: peak resident set)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def _stat(path: str) -> tuple[str, float] | None:
    """A process's or thread's name and CPU seconds (user + system) from its `stat` file;
    None once it has ended."""
    try:
        with open(path) as f:
            head, fields = f.read().rsplit(")", 1)
    except OSError:
        return None
    ticks = fields.split()
    return head.split("(", 1)[1], (int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far."""
    stat = _stat(f"/proc/{pid}/stat")
    return stat[1] if stat else 0.0


def threads_cpu() -> dict[int, tuple[str, float]]:
    """Per thread of this process: its name (Python's, else the OS one: DuckDB's workers
    are unnamed "python" threads) and CPU seconds so far."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {}
    for tid in os.listdir("/proc/self/task"):
        stat = _stat(f"/proc/self/task/{tid}/stat")
        if stat is not None:
            out[int(tid)] = (names.get(int(tid)) or f"native:{stat[0]}", stat[1])
    return out


def thread_cpu_parts(before: dict[int, tuple[str, float]],
                     after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per thread name between two `threads_cpu` snapshots (same names summed)."""
    parts: dict[str, float] = {}
    for tid, (name, cpu) in after.items():
        used = cpu - before.get(tid, (name, 0.0))[1]
        if used > 0:
            key = f"thread:{re.sub(r'_[0-9]+$', '', name)}"
            parts[key] = parts.get(key, 0.0) + used
    return parts


def host_steal() -> float:
    """CPU seconds the hypervisor has taken from this machine so far, all CPUs (/proc/stat
    'steal'): a round it grew in ran on less CPU than the others."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0
