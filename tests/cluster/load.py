"""What the cluster tests watch while they break things: traffic through nginx and every render."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

from tests.support.consul_agent import ConsulAgent


class Renders:
    """Every distinct content a rendered file takes, with the monotonic time it was first seen."""

    def __init__(self, path: Path, limit: float = 90.0) -> None:
        self.path, self.limit = path, limit
        self.seen: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Renders:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            # The sidecar replaces the file by rename: each read is one whole render.
            data = self.path.read_bytes()
            if not self.seen or self.seen[-1][1] != data:
                self.seen.append((time.monotonic(), data))
            time.sleep(0.005)

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time between two renders (or the window's edges) within [start, end]."""
        times = [start, *(t for t, _ in self.seen if start < t < end), end]
        return max(b - a for a, b in itertools.pairwise(times))


class Flipper:
    """Flips one TTL check between critical and passing every ``period`` seconds; passing at the end."""

    def __init__(self, agent: ConsulAgent, sid: str, period: float = 0.3) -> None:
        self.agent, self.sid, self.period = agent, sid, period
        self.flips = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Flipper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.agent.set_ttl(self.sid, "passing")

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            # The agent answers even without a leader; it syncs the change when it can.
            self.agent.set_ttl(self.sid, "critical" if self.flips % 2 == 0 else "passing")
            self.flips += 1
