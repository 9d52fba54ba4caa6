"""``python bench/reaper.py ARGV...``: run ARGV as a child subreaper, so its whole tree's CPU is countable.

An engine's helpers daemonize (conmon, containerd-shim): left alone they are re-parented to PID 1 and the
CPU of every short-lived process they start is lost to /proc. Under this process they are re-parented here
instead, and reaped here, so the tree's CPU at any moment is the sum over its live processes of
utime + stime + cutime + cstime. Standalone (no project imports): it is started by path.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36


def main(argv: list[str]) -> int:
    """Start argv, reap every orphan that lands here, exit with argv's status once it has exited."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    child = os.fork()
    if child == 0:
        os.execvp(argv[0], argv)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, _f: os.kill(child, s))  # the engine decides how to stop
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if pid == child:
            # Orphans still running go on to PID 1, as they would have without us.
            return os.waitstatus_to_exitcode(status) & 0xFF


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
