"""The follower of the engine's events counts failures from the last connection, as its log says."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from healthchecks.engine import CONNECTED, ContainerEvent, ContainerInfo, ExecResult
from healthchecks.engine_events import EngineEvents
from healthchecks.metrics import RegistrarMetrics
from healthchecks.state import RegistrarState
from plumbing.errors import EngineError


class FlakyEngine:
    """An event stream that fails to open, opens and breaks, fails again, then stays open."""

    def __init__(self, script: list[str]) -> None:
        self.script = script  # one entry per call of events(): "down", "breaks", "ends" or "stays"
        self.stayed = asyncio.Event()

    async def running(self, refresh: bool = False) -> tuple[ContainerInfo, ...]:
        return ()

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        return None

    async def events(self) -> AsyncIterator[ContainerEvent]:
        step = self.script.pop(0)
        if step == "down":
            raise EngineError("The container engine at fake could not open the event stream: down.")
        yield ContainerEvent(CONNECTED, "")
        if step == "breaks":
            raise EngineError("The event stream of the container engine at fake broke: reset.")
        if step == "ends":
            return
        self.stayed.set()
        await asyncio.Event().wait()

    async def exec(self, container_id: str, argv: tuple[str, ...], timeout: float, limit: int) -> ExecResult:
        return ExecResult(0, "")

    async def close(self) -> None:
        pass


def follow(script: list[str]) -> tuple[EngineEvents, RegistrarState, list[int]]:
    """Follow a FlakyEngine until its stream stays open."""
    metrics = RegistrarMetrics()
    state = RegistrarState(consul="127.0.0.1:1", engine="fake")
    reconnects: list[int] = []
    events = EngineEvents(
        asyncio.Event(), state, metrics, reconnected=lambda: reconnects.append(1), health_changed=print
    )
    engine = FlakyEngine(script)

    async def go() -> None:
        task = asyncio.create_task(events.follow(engine))
        async with asyncio.timeout(20):
            await engine.stayed.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        events.stop()

    asyncio.run(go())
    return events, state, reconnects


def test_failures_are_counted_from_the_last_connection(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="healthchecks.engine_events"):
        events, state, reconnects = follow(["down", "down", "breaks", "down", "stays"])
    attempts = [r.getMessage().rsplit("(", 1)[1] for r in caplog.records if "Reconnecting" in r.getMessage()]
    assert attempts == ["attempt 1).", "attempt 2).", "attempt 1).", "attempt 2)."]
    assert sum("Reconnected" in r.getMessage() for r in caplog.records) == 2
    assert len(reconnects) == 2 and state.engine_error is None and events.stream_error is None


def test_a_stream_that_just_ends_is_a_reconnection_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="healthchecks.engine_events"):
        _, state, reconnects = follow(["ends", "stays"])
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "Reconnected" in caplog.records[0].getMessage()
    assert len(reconnects) == 2 and state.engine_error is None


@pytest.mark.parametrize(
    ("actions", "needed"),
    [
        ((), True),  # a resync, a reconnection, a service file: list
        (("die",), False),
        (("die", "stop", "destroy"), False),
        (("kill", "die"), False),  # Podman's order: the signal, then the death
        (("kill",), False),  # a signal alone: the listing less the dead (none) stays true
        (("die", "start"), True),  # a birth among them: only a listing shows it
        (("start",), True),
        (("exec_start",), True),  # not relevant: nothing since the last listing, so list
    ],
)
def test_a_listing_is_needed_unless_only_deaths_came_since_the_last(
    actions: tuple[str, ...], needed: bool
) -> None:
    async def go() -> tuple[bool, bool]:
        events = EngineEvents(
            asyncio.Event(),
            RegistrarState("127.0.0.1:1", "fake"),
            RegistrarMetrics(),
            reconnected=lambda: None,
            health_changed=print,
        )
        for action in actions:
            events.on_event(ContainerEvent(action, "c" * 12))
        first = events.listing_needed()
        events.stop()
        return first, events.listing_needed()

    first, then = asyncio.run(go())
    assert (first, then) == (needed, True)  # and the pass after it lists
