"""glibc's malloc arenas, capped for a long-running daemon (``MALLOC_ARENA_MAX``'s default, set from inside).

Each thread that allocates gets an arena of its own in glibc (up to eight per core), and an arena keeps
what was freed in it. The sidecar decodes large answers, writes files and joins the state file in worker
threads, so every flip left a few megabytes behind in one arena or another: at 5,000 upstreams its RSS
grew from 88 to 96 MB over 40 flips, where two arenas held it at 90 (bench/notes.md). Two is the cap
commonly advised for servers; the GIL means threads barely contend for them.

A ``MALLOC_ARENA_MAX`` in the environment wins (glibc read it at start-up; nothing is changed then), and
where the C library is not glibc (musl, macOS) nothing happens.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Mapping

__all__ = ["ARENAS", "limit_arenas"]

log = logging.getLogger(__name__)

ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt() parameter number (malloc.h)


def limit_arenas(env: Mapping[str, str], arenas: int = ARENAS) -> bool:
    """Cap glibc's arenas at ``arenas`` before any worker thread starts; True when the cap was set."""
    if "MALLOC_ARENA_MAX" in env:
        return False  # the operator's own setting, which glibc has applied already
    try:
        # The C library the interpreter itself runs on (no search for libc on disk at start-up).
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False  # a C library without mallopt: its allocator has no such arenas
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(_M_ARENA_MAX, arenas) != 1:
        log.debug("mallopt(M_ARENA_MAX, %d) was refused; malloc keeps its arenas.", arenas)
        return False
    return True
