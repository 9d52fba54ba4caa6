"""The scripted story: all serve; one fails and leaves; it recovers and returns; a new one joins; one is
killed and disappears. Each step waits (bounded) for its effect and reports what was measured."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .actions import Actions
from .board import Board

__all__ = ["Story"]

T = TypeVar("T")
STEP_TIMEOUT = 20.0
PAUSE = 1.5  # between steps, so the live view can be followed
POLL = 0.02
STEPS = 5


class Story:
    """Runs the steps once; ``failed`` counts steps whose effect was not seen in time."""

    def __init__(self, board: Board, actions: Actions, replicas: int) -> None:
        self.board = board
        self.actions = actions
        self.replicas = replicas
        self.failed = 0

    async def run(self) -> None:
        """Play every step, then return (the demo keeps serving until it is stopped)."""
        act = self.actions
        first, second = "prime-2", f"prime-{min(3, self.replicas)}"
        await self._all_serve()
        await self._change(2, f"{first} fails its health check and leaves rotation", first, "leave",
                           lambda: act.fail(first))  # fmt: skip
        await self._change(3, f"{first} recovers and returns to rotation", first, "join",
                           lambda: act.recover(first))  # fmt: skip
        new = f"prime-{act.next_number}"
        await self._change(4, f"a new replica {new} starts and joins", new, "join", act.start)
        await self._change(5, f"{second} is killed and disappears", second, "leave",
                           lambda: act.kill(second))  # fmt: skip
        result = "complete" if not self.failed else f"incomplete: {self.failed} of {STEPS} steps NOT observed"
        self.board.say(f"story {result}; still serving until the demo is stopped")

    async def _all_serve(self) -> None:
        self.board.say(f"step 1/{STEPS}: waiting until all {self.replicas} replicas are passing and serve")

        if await _until(self.board.all_serve, STEP_TIMEOUT):
            counts = ", ".join(f"{r.replica.name} {r.served}" for r in self.board.rows.values())
            self.board.say(
                f"step 1/{STEPS} observed: all {self.replicas} replicas serve (requests: {counts})"
            )
            self.board.start_counting()  # 502s before the first replica passed are expected
        else:
            self._missed(1)
        await asyncio.sleep(PAUSE)

    async def _change(
        self, number: int, text: str, name: str, kind: str, act: Callable[[], Awaitable[object]]
    ) -> None:
        self.board.say(f"step {number}/{STEPS}: {text}")
        before = time.monotonic()
        await act()
        m = await _until(lambda: self.board.measured_since(name, kind, before), STEP_TIMEOUT)
        if m is not None and m.latency is not None:
            verb = "left" if kind == "leave" else "joined"
            latency = f"{m.latency * 1000:.0f} ms"
            self.board.say(
                f"step {number}/{STEPS} observed: {name} {verb} rotation; Consul showed it "
                f"{(m.changed_at - before) * 1000:.0f} ms after the action; nginx routed accordingly "
                f"{latency} after Consul (latency {latency})"
            )
        else:
            self._missed(number)
        await asyncio.sleep(PAUSE)

    def _missed(self, number: int) -> None:
        self.failed += 1
        self.board.say(f"step {number}/{STEPS} NOT observed within {STEP_TIMEOUT:g}s")


async def _until(predicate: Callable[[], T], timeout: float) -> T | None:
    """Poll until predicate() is truthy; return its value, or None at the deadline."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(POLL)
    return value
