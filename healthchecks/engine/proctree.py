"""Killing a host process and every descendant, found through /proc.

The engine API has no call to kill an exec session, so a check that outlives its timeout is killed by
its host PID; a shell's children would otherwise keep the output pipe open.
"""

from __future__ import annotations

import errno
import logging
import os
import signal

__all__ = ["descendants", "kill_tree"]

log = logging.getLogger(__name__)


def descendants(pid: int) -> list[int]:
    """Every descendant of a host process, from /proc (empty where /proc is not readable)."""
    found: list[int] = []
    pending = [pid]
    while pending and len(found) < 10_000:
        current = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    children = [int(c) for c in handle.read().split()]
            except (OSError, ValueError):
                continue
            found.extend(children)
            pending.extend(children)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a process and its descendants; one that is gone already is fine, others are logged."""
    for victim in [pid, *descendants(pid)]:
        try:
            os.kill(victim, signal.SIGKILL)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                log.warning("Cannot kill the timed-out check process %d: %s.", victim, exc.strerror)
