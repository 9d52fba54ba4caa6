"""A client that keeps asking a proxy which backend answers, and the questions asked of its records.

One thread sends plain HTTP/1.0 requests (a new connection each, so every request sees the proxy's
current configuration, as a new client would) to 127.0.0.1 only, and records ``(start, end, label)``:
the label is the backend's name from the body, or ``HTTP <code>`` / ``ERR`` for failures. The loop is
bounded in count and in time, whatever the caller does.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Prober", "Record"]

MAX_SECONDS = 900.0
MAX_REQUESTS = 3_000_000


@dataclass(frozen=True)
class Record:
    """One request: when it was sent, when its answer was complete, and who answered."""

    start: float
    end: float
    label: str

    @property
    def ok(self) -> bool:
        return not self.label.startswith(("HTTP ", "ERR"))


def request(port: int, host: str, timeout: float = 2.0) -> str:
    """One GET / to 127.0.0.1:port with ``Host`` and ``X-Svc`` set to ``host``; the answer's label."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\nX-Svc: {host}\r\n\r\n".encode())
            chunks = []
            while chunk := conn.recv(4096):
                chunks.append(chunk)
    except OSError:
        return "ERR"
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    if status != [b"200"]:
        return f"HTTP {status[0].decode(errors='replace') if status else '?'}"
    return body.decode(errors="replace").strip()


class Prober:
    """Requests in a loop on a thread, cycling through ``hosts``; ``records`` grows as answers come."""

    def __init__(
        self,
        port: int,
        hosts: Sequence[str] = ("prime",),
        *,
        pause: float = 0.0,
        max_seconds: float = MAX_SECONDS,
        max_requests: int = MAX_REQUESTS,
    ) -> None:
        self.port = port
        self.hosts = tuple(hosts)
        self.pause = pause
        self.max_seconds = min(max_seconds, MAX_SECONDS)
        self.max_requests = min(max_requests, MAX_REQUESTS)
        self.records: list[Record] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"prober-{port}", daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        i = 0
        while not self._stop.is_set() and i < self.max_requests:
            start = time.monotonic()
            if start > deadline:
                break
            label = request(self.port, self.hosts[i % len(self.hosts)])
            self.records.append(Record(start, time.monotonic(), label))
            i += 1
            if self.pause:
                self._stop.wait(self.pause)

    # Questions -------------------------------------------------------------------------------------

    def since(self, t: float) -> list[Record]:
        """Records whose answer arrived at or after ``t`` (a copy: the thread keeps appending)."""
        # Searched in place, only the tail copied: the list only grows, and the waits below ask every
        # few milliseconds, so copying all of it (a million records in a long run) would take the
        # cores from the system being measured.
        records = self.records
        lo, hi = 0, len(records)
        end = hi
        while lo < hi:  # ends are increasing: binary search for the first end >= t
            mid = (lo + hi) // 2
            if records[mid].end < t:
                lo = mid + 1
            else:
                hi = mid
        return records[lo:end]

    def failures(self, since: float = 0.0) -> list[Record]:
        return [r for r in self.since(since) if not r.ok]

    def wait_gone(self, label: str, t0: float, *, settle: float, timeout: float) -> float | None:
        """Seconds from ``t0`` to the last answer by ``label``, once none came for ``settle`` seconds.

        None if ``label`` still answered ``timeout`` seconds after ``t0``.
        """
        deadline = t0 + timeout
        while True:
            now = time.monotonic()
            records = self.since(t0)
            last = max((r.end for r in records if r.label == label), default=t0)
            after = sum(1 for r in records if r.end > last)
            if now - last >= settle and after >= 5:
                return last - t0
            if now > deadline:
                return None
            time.sleep(0.02)

    def wait_back(self, label: str, t0: float, *, timeout: float) -> float | None:
        """Seconds from ``t0`` to the first answer by ``label`` that started after ``t0``; None on timeout."""
        deadline = t0 + timeout
        checked = t0
        while True:
            now = time.monotonic()
            for r in self.since(checked):
                if r.label == label and r.start >= t0:
                    return r.end - t0
            checked = now - 1.0  # requests in flight may end after ``now``; look back a little
            checked = max(checked, t0)
            if now > deadline:
                return None
            time.sleep(0.005)

    def labels(self, since: float) -> set[str]:
        return {r.label for r in self.since(since)}
