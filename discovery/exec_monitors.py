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

import errno
import os
import signal
import time
from pathlib import Path

__all__ = ["end_exec_monitors", "exec_monitors"]

PROC = Path("/proc")
FORK_WAIT = 1.0  # the monitor forks its child just after writing the exit code; seconds to wait for it


def _parent(pid: int) -> int:
    # The command name in /proc/PID/stat is in parentheses and may hold spaces: split after the last one.
    fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1])


def exec_monitors(exec_id: str) -> dict[int, int]:
    """Every conmon process of one exec session: pid -> parent pid."""
    found: dict[int, int] = {}
    marker = exec_id.encode()
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_bytes().strip() != b"conmon":
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if marker in argv:
                found[int(entry.name)] = _parent(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue  # exited while we looked
    return found


def end_exec_monitors(exec_id: str) -> int:
    """SIGTERM the sleeping child monitor of a finished exec session; return how many were signalled.

    Raises OSError when a monitor may not be signalled (the companion is not root for a rootful Podman).
    """
    deadline = time.monotonic() + FORK_WAIT
    while True:
        monitors = exec_monitors(exec_id)
        children = [pid for pid, parent in monitors.items() if parent in monitors]
        # No monitor at all: not Podman, or it is already done. A lone one has not forked yet.
        if children or not monitors or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError as exc:
            if exc.errno != errno.ESRCH:  # gone already is fine; EPERM is the caller's to report
                raise
    return len(children)
