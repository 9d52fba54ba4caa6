"""CPU time of processes and process trees, from /proc (utime + stime, and the reaped children's)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["own_cpu", "tree_cpu"]

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, int]:
    """(parent pid, utime + stime + cutime + cstime in ticks) of one process."""
    # The command name is in parentheses and may hold spaces: split after the last one.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), sum(int(f) for f in fields[11:15])


def own_cpu(pid: int) -> float:
    """CPU seconds of one process itself (utime + stime), without its reaped children's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and its live descendants, each with its reaped children's."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                parents[int(name)], ticks[int(name)] = _stat(int(name))
            except (OSError, ValueError, IndexError):
                continue  # exited while we looked: its times are now its parent's
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(ticks.get(pid, 0) for pid in tree) / TICK
