"""The companion's follower of the engine's events: it marks the daemon dirty, remembers announced deaths
and reconnects with backoff (``retry``), for as long as the daemon runs.

Events only say "look again": every reconcile lists the running containers anew (level-triggered), so a
missed event heals at the next one. A death is remembered because a listing made just after it may still
show the container running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import tenacity

from plumbing.errors import EngineError
from plumbing.logs import worth_logging

from .engine import CONNECTED, ContainerEvent, Engine, is_relevant
from .engine.events import BIRTHS, DEATHS, SIGNALS, kind
from .metrics import RegistrarMetrics
from .retry import LOG_EVERY, retrying
from .state import RegistrarState

__all__ = ["SETTLE", "EngineEvents"]

log = logging.getLogger(__name__)
# One more reconcile this long after the last event: an engine's list can lag its events (Docker still
# lists a container as paused just after its "unpause" event).
SETTLE = 0.5


class _Ended(EngineError):
    """The stream ended without an error (the engine stopped its API service cleanly)."""


class EngineEvents:
    """Follows one engine's event stream on behalf of the daemon."""

    def __init__(
        self,
        dirty: asyncio.Event,
        state: RegistrarState,
        metrics: RegistrarMetrics,
        *,
        reconnected: Callable[[], None],
        health_changed: Callable[[str], None],
    ) -> None:
        self.dirty = dirty
        self.state = state
        self.metrics = metrics
        self.stream_error: str | None = None  # what the stream last said about the engine
        # Containers whose death the engine announced: a listing made at once may still show them running.
        self.dead: set[str] = set()
        # The kinds of relevant events since the last listing: "death" (signals too), "other".
        self._since_listing: set[str] = set()
        self._reconnected = reconnected
        self._health_changed = health_changed
        self._connections = 0  # event streams opened, for the reconnect metric
        self._settle: asyncio.TimerHandle | None = None

    async def follow(self, engine: Engine) -> None:
        """Follow the engine's events for ever, reconnecting with backoff."""
        broke: EngineError | None = None
        while True:
            async for attempt in retrying((EngineError,), self._stream_failed):
                with attempt:
                    if broke is not None:
                        # A stream that connected and then broke is failure 1 of a new count (tenacity
                        # counts per loop): raised again here, it is logged and backed off like any other.
                        error, broke = broke, None
                        raise error
                    broke = await self._session(engine, reconnect=attempt.retry_state.attempt_number > 1)

    def stop(self) -> None:
        """Cancel the pending settle reconcile."""
        if self._settle is not None:
            self._settle.cancel()

    async def _session(self, engine: Engine, *, reconnect: bool) -> EngineError:
        """Handle events until the stream breaks; raise if it never opened, return the error if it did."""
        connected = False
        try:
            async for event in engine.events():
                if event.action == CONNECTED:
                    connected = True
                    self._connected(reconnect)
                self.on_event(event)
        except EngineError as exc:
            if not connected:
                raise
            return exc
        # Ended without an error: a lost connection all the same (backed off, and the next CONNECTED is a
        # reconnection and says so), but nothing is wrong to warn about.
        return _Ended("The event stream of the container engine ended.")

    def _connected(self, reconnect: bool) -> None:
        self._connections += 1
        if self._connections > 1:
            self.metrics.engine_reconnects.inc()
        self.state.engine_error = self.stream_error = None
        self._reconnected()  # events may have been missed while the stream was down: inspect again
        if reconnect:
            log.info("Reconnected to the container engine; reconciling.")

    def _stream_failed(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Ended):
            return
        self.state.engine_error = self.stream_error = str(exc)
        if worth_logging(state.attempt_number, LOG_EVERY):
            log.warning("%s Reconnecting (attempt %d).", exc, state.attempt_number)

    def listing_needed(self) -> bool:
        """Whether this reconcile must list the running containers; False when the events since the last
        listing were deaths alone. Then that listing less the dead is the truth, and the death is
        deregistered without waiting for the engine, whose list call can take a hundred milliseconds
        while it tears the container down; the settle pass (``SETTLE``) lists again."""
        needed = self._since_listing != {"death"}
        self._since_listing.clear()
        return needed

    def on_event(self, event: ContainerEvent) -> None:
        """Note deaths and births; reconcile now and once more after SETTLE; rerun a changed health check."""
        base = kind(event)
        if base in DEATHS:
            self.dead.add(event.container_id)
        elif base in BIRTHS:
            self.dead.discard(event.container_id)
        if not is_relevant(event):
            return
        # A signal changes no listing by itself (the death it may cause is an event of its own): Podman
        # sends "kill" just before "die", and a listing then waits for the container's teardown.
        self._since_listing.add("death" if base in DEATHS | SIGNALS else "other")
        log.debug("Engine event %s for %s.", event.action, event.name or event.container_id[:12])
        self.dirty.set()
        if self._settle is not None:
            self._settle.cancel()
        self._settle = asyncio.get_running_loop().call_later(SETTLE, self.dirty.set)
        if event.action.startswith("health_status"):
            self._health_changed(event.container_id)
