"""When a rendered file next changes on disk: the *flip -> file* measure of scale.py.

A thread polls ``os.stat`` of the file every millisecond from when the ``with`` block starts; the first
stat that differs from the one taken at the start (another inode after an atomic rename, another
mtime or size after a write in place) is the change, waited for up to ``SETTLE`` after the block ends.
Stat only, never a read: the file may be large.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["FileChange"]

INTERVAL = 0.001
LIMIT = 120.0  # the thread ends after this long, whatever its owner does
SETTLE = 2.0  # how long the end of the block still waits for the change (dynamic mode pushes first)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class FileChange:
    """Times the next change of ``path``: ``after(t0)`` is seconds from ``t0`` to it (None: none seen)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.baseline = _signature(path)
        self.changed: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="file-change", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # In dynamic mode the push goes out while the file is written: routed can come first, and the
        # change must still be seen here, not by the next flip's watch (it would look instant there).
        if self.baseline is not None:  # no file at all (Traefik's rounds): nothing to wait for
            self._thread.join(SETTLE)
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        deadline = time.monotonic() + LIMIT
        while not self._stop.is_set() and time.monotonic() < deadline:
            if _signature(self.path) != self.baseline:
                self.changed = time.monotonic()
                return
            time.sleep(INTERVAL)

    def after(self, t0: float) -> float | None:
        """Seconds from ``t0`` to the change, or None if the file did not change while watched."""
        return None if self.changed is None else max(0.0, self.changed - t0)
