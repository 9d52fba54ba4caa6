"""The quiescence policy: after a change, fire when quiet for ``min``, never later than ``max`` after it,
and (when a wait is configured at all) never more often than once per ``max``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Quiescence"]


@dataclass
class Quiescence:
    """Pure bookkeeping over times given by the caller (a real or a fake clock)."""

    min: float
    max: float
    _first: float | None = None
    _last: float | None = None
    _fired_at: float | None = None

    def change(self, now: float) -> None:
        """Record a change at ``now``."""
        if self._first is None:
            self._first = now
        self._last = now

    def pending(self) -> bool:
        """Whether a change waits to be fired."""
        return self._first is not None

    def delay(self, now: float) -> float:
        """Seconds until the pending change should fire (0 when due; 0 when nothing is pending)."""
        if self._first is None or self._last is None or self.min <= 0:
            return 0.0
        due = min(self._last + self.min, self._first + self.max)
        if self._fired_at is not None:
            # At most one render per `max`: changes spaced just over `min` apart would otherwise each
            # be "quiet enough" and reload nginx every time.
            due = max(due, self._fired_at + self.max)
        return max(0.0, due - now)

    def fired(self, now: float | None = None) -> None:
        """Forget the pending change (it has been rendered at ``now``)."""
        self._first = self._last = None
        if now is not None:
            self._fired_at = now
