"""Measuring "health changed in Consul" -> "nginx routes accordingly", per replica.

A replica that turns passing has joined when nginx hands it its first request after the change. One that
stops passing has left once it has answered nothing for ``QUIET`` seconds; the latency is then its last
answer after the change (0 when none came). Pure: the caller passes the times.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["QUIET", "Measurement", "Tracker"]

QUIET = 0.5  # seconds without an answer that mean "out of rotation" (the trickle is ~200 requests/s)
GIVE_UP = 30.0


@dataclass(frozen=True)
class Measurement:
    """One completed change: ``kind`` is "join" or "leave"; times are monotonic seconds."""

    replica: str
    kind: str
    status: str  # the new status in Consul: passing, warning, critical, or gone
    changed_at: float  # when the demo's blocking query saw the change
    latency: float | None  # None: the replica never served (join) within GIVE_UP
    answered_after: bool = True  # leave: whether any request reached it after the change


@dataclass(frozen=True)
class _Pending:
    kind: str
    status: str
    since: float
    last: float | None = None


class Tracker:
    """Pending changes, completed by answers and by the passing of time."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}

    def on_health(self, replica: str, old: str, new: str, at: float) -> None:
        """Note a change of a replica's status in Consul."""
        if new == "passing" and old != "passing":
            self._pending[replica] = _Pending("join", new, at)
        elif old == "passing" and new != "passing":
            self._pending[replica] = _Pending("leave", new, at)

    def on_answer(self, replica: str, at: float) -> Measurement | None:
        """Note an answer from a replica through nginx; return a join it completes."""
        pending = self._pending.get(replica)
        if pending is None or at < pending.since:
            return None
        if pending.kind == "join":
            del self._pending[replica]
            return Measurement(replica, "join", pending.status, pending.since, at - pending.since)
        self._pending[replica] = replace(pending, last=at)
        return None

    def tick(self, now: float) -> list[Measurement]:
        """Return the leaves (and hopeless joins) that time has completed."""
        done = []
        for replica, p in list(self._pending.items()):
            if p.kind == "leave" and now - (p.last or p.since) >= QUIET:
                latency = 0.0 if p.last is None else p.last - p.since
                done.append(Measurement(replica, "leave", p.status, p.since, latency, p.last is not None))
            elif p.kind == "join" and now - p.since >= GIVE_UP:
                done.append(Measurement(replica, "join", p.status, p.since, None))
            else:
                continue
            del self._pending[replica]
        return done
