"""What the demo knows right now: replicas, their health in Consul, requests per replica, nginx reloads,
the last measured change, and a log of events. The views draw it; everything else writes to it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .latency import Measurement, Tracker
from .replicas import Replica

__all__ = ["Board", "Event", "Row"]

EVENTS_KEPT = 200


@dataclass(frozen=True)
class Event:
    """One line of the demo's story: ``at`` is seconds since the demo started."""

    at: float
    text: str


@dataclass
class Row:
    """One replica as the view shows it."""

    replica: Replica
    health: str = "unregistered"
    served: int = 0
    running: bool = True


@dataclass
class Board:
    """The demo's state; single-threaded (the event loop), so no locks."""

    started: float = field(default_factory=time.monotonic)
    rows: dict[str, Row] = field(default_factory=dict)
    reloads: int = 0
    errors: int = 0  # failed requests through nginx, counted once every replica first served
    counting: bool = False  # before that, nginx answers 502 by design (nothing passes yet): not failures
    cut_short: int = 0  # answers a replica began and never finished: it was killed mid-response
    errors_label: str = "failed requests since all replicas served"
    last_change: Measurement | None = None
    measurements: list[Measurement] = field(default_factory=list)
    events: deque[Event] = field(default_factory=lambda: deque(maxlen=EVENTS_KEPT))
    listeners: list[Callable[[Event], None]] = field(default_factory=list)
    tracker: Tracker = field(default_factory=Tracker)
    nginx_url: str = ""

    def say(self, text: str) -> None:
        """Add an event and tell every listener."""
        event = Event(time.monotonic() - self.started, text)
        self.events.append(event)
        for listener in self.listeners:
            listener(event)

    def add(self, replica: Replica) -> None:
        """A replica now runs."""
        self.rows[replica.name] = Row(replica)

    def by_port(self, port: int) -> Row | None:
        """The replica answering on a host port."""
        return next((r for r in self.rows.values() if r.replica.port == port), None)

    def all_serve(self) -> bool:
        """True once every running replica passes in Consul and has answered a request."""
        rows = [r for r in self.rows.values() if r.running]
        return bool(rows) and all(r.health == "passing" and r.served > 0 for r in rows)

    def start_counting(self) -> None:
        """Count failed requests from now on (the story's and the interactive mode's common start)."""
        self.counting = True
        self.errors = 0

    def health(self, row: Row, status: str, at: float) -> None:
        """A replica's status in Consul changed (seen by the blocking query at ``at``)."""
        old, row.health = row.health, status
        self.say(f"{row.replica.name} is {status} in Consul (was {old})")
        self.tracker.on_health(row.replica.name, old, status, at)

    def answer(self, name: str, at: float) -> None:
        """nginx handed a request to replica ``name`` and it answered."""
        row = self.rows.get(name)
        if row is not None:
            row.served += 1
        done = self.tracker.on_answer(name, at)
        if done is not None:
            self._measured(done)

    def tick(self, now: float) -> None:
        """Let time complete pending measurements."""
        for done in self.tracker.tick(now):
            self._measured(done)

    def _measured(self, m: Measurement) -> None:
        self.measurements.append(m)
        self.last_change = m
        self.say(describe(m))

    def measured_since(self, name: str, kind: str, since: float) -> Measurement | None:
        """The first measurement of this kind for a replica whose Consul change came after ``since``."""
        return next(
            (m for m in self.measurements if m.replica == name and m.kind == kind and m.changed_at >= since),
            None,
        )


def describe(m: Measurement) -> str:
    """One sentence about a measured change."""
    if m.latency is None:
        return f"{m.replica} turned passing but nginx never sent it a request"
    ms = f"{m.latency * 1000:.0f} ms"
    if m.kind == "join":
        return f"{m.replica} joined rotation: first request {ms} after Consul said passing (latency {ms})"
    if not m.answered_after:
        return f"{m.replica} left rotation: no request reached it after Consul said {m.status} (latency 0 ms)"
    return f"{m.replica} left rotation: last request {ms} after Consul said {m.status} (latency {ms})"
