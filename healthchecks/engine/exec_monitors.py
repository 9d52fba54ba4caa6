"""Podman's exec monitors, ended as soon as the companion has read a check's exit code.

Every exec session started through Podman's API gets a ``conmon`` monitor that, after the command has
exited, forks a child which sleeps ``exit_command_delay`` (300 s by default, Docker's reaper interval)
before running the exit command that removes the session: a check every 2 s leaves about 150 monitors
per container. The API has no call to remove a session. The sleeping child handles SIGTERM (conmon
forwards it to the command, which is gone) and returns from its sleep, so it runs the exit command at
once: the session is removed and both monitor processes exit, exactly as they would after the delay.
Only that child is signalled, and only once the exit code has been read (the session is gone after).

Found through /proc, so this works where the companion shares the engine's host PID namespace (a
companion in a container without it leaves the engine's delay to apply; see docs/registrar.md).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

__all__ = ["ExecMonitors", "end_exec_monitors", "exec_monitors", "highest_pid"]

log = logging.getLogger(__name__)

PROC = Path("/proc")
FORK_WAIT = 1.0  # the monitor forks its child just after writing the exit code; seconds to wait for it


def _parent(pid: int) -> int:
    # The command name in /proc/PID/stat is in parentheses and may hold spaces: split after the last one.
    fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1])


def highest_pid() -> int:
    """The highest process ID now running (new processes get higher ones until the IDs wrap)."""
    return max((int(name) for name in os.listdir(PROC) if name.isdigit()), default=0)


def exec_monitors(exec_id: str, floor: int = 0) -> dict[int, int]:
    """Every conmon process of one exec session above pid ``floor``: pid -> parent pid.

    Only processes started after ``floor`` are read (a handful, not every process of a busy host).
    """
    found: dict[int, int] = {}
    marker = exec_id.encode()
    for name in os.listdir(PROC):
        if not name.isdigit() or int(name) <= floor:
            continue
        try:
            if (PROC / name / "comm").read_bytes().strip() != b"conmon":
                continue
            argv = (PROC / name / "cmdline").read_bytes().split(b"\0")
            if marker in argv:
                found[int(name)] = _parent(int(name))
        except (OSError, ValueError, IndexError):
            continue  # exited while we looked
    return found


def end_exec_monitors(exec_id: str, floor: int = 0) -> int:
    """SIGTERM the sleeping child monitor of a finished exec session; return how many were signalled.

    Raises OSError when a monitor may not be signalled (the companion is not root for a rootful Podman).
    """
    deadline = time.monotonic() + FORK_WAIT
    if not exec_monitors(exec_id, floor):
        floor = 0  # none above the floor: the IDs wrapped (or it is gone); look at every process once
    while True:
        monitors = exec_monitors(exec_id, floor)
        children = [pid for pid, parent in monitors.items() if parent in monitors]
        # No monitor at all: not Podman, or it is already done. A lone one has not forked yet.
        if children or not monitors or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    _terminate(children, exec_id, floor)
    return len(children)


def _terminate(children: list[int], exec_id: str, floor: int) -> None:
    """SIGTERM each child, again until it has left its sleep (or FORK_WAIT has passed).

    Why again: a signal that arrives after the fork but before the child begins ``sleep()`` is handled
    and then the full delay is slept anyway (seen under load: about one session in 50 kept both its
    monitors). Once the child runs the exit command it is no longer a conmon of this session.
    """
    deadline = time.monotonic() + FORK_WAIT
    left = children
    while left:
        for pid in left:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError as exc:
                if exc.errno != errno.ESRCH:  # gone already is fine; EPERM is the caller's to report
                    raise
        if time.monotonic() > deadline:
            return
        time.sleep(0.005)
        still = exec_monitors(exec_id, floor)
        left = [pid for pid in left if pid in still]


class ExecMonitors:
    """One engine's exec monitors: whether it is Podman (asked once), and ending them after each exec."""

    def __init__(self) -> None:
        self._podman: bool | None = None
        self._warned = False

    async def before(self, is_podman: Callable[[], Awaitable[bool]]) -> int | None:
        """Before an exec: on Podman, the highest pid (its monitor gets a higher one); None elsewhere."""
        if self._podman is None:
            self._podman = await is_podman()
        if not self._podman:
            return None  # Docker keeps no process per finished exec session
        return await asyncio.to_thread(highest_pid)

    async def after(self, exec_id: str, floor: int | None) -> None:
        """Once the exit code is read: end the session's lingering monitor (Podman only)."""
        if floor is None:
            return
        try:
            await asyncio.to_thread(end_exec_monitors, exec_id, floor)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "Cannot end Podman's monitor of a finished check (%s): each check run leaves a conmon "
                    "process until Podman's exit_command_delay (default 300s) passes.",
                    exc.strerror,
                )
