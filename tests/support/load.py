"""Traffic through nginx while a test breaks things: every request that did not answer 200 is counted."""

from __future__ import annotations

import threading
import time

from .nginx import NginxServer

__all__ = ["Load"]


class Load:
    """A steady, bounded stream of requests through nginx in a thread; counts what failed."""

    def __init__(self, nginx: NginxServer, limit: float = 120.0) -> None:
        self.nginx, self.limit = nginx, limit
        self.sent = self.failed = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            status, body = self.nginx.get()
            self.sent += 1
            if status != 200:
                self.failed += 1
                self.failures.append(f"{status} {body}")
            time.sleep(0.005)
