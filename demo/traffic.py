"""A steady trickle of requests through nginx, counting the answers of each replica."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from .board import Board

__all__ = ["Traffic"]

PAUSE = 0.005  # between one client's requests; two clients give a few hundred requests a second
PAUSE_AFTER_FAILURE = 0.05  # while nothing serves (502 at once), a trickle, not a flood


class Traffic:
    """HTTP clients of the demo's nginx; a new connection per request, so nginx balances each one."""

    def __init__(self, url: str, board: Board) -> None:
        self.url = url
        self.board = board
        self._session: aiohttp.ClientSession | None = None
        self._reported = 0.0

    async def __aenter__(self) -> Traffic:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), timeout=aiohttp.ClientTimeout(total=5)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def run(self) -> None:
        """Send requests until cancelled."""
        assert self._session is not None
        while True:
            try:
                async with self._session.get(self.url) as resp:
                    body = await resp.text()
                    problem = "" if resp.status == 200 and body.strip() else f"HTTP {resp.status}"
            except aiohttp.ClientPayloadError:
                # The replica sent its headers and died (the story kills one): nginx cannot retry a
                # response it has begun, and no routing could have avoided it. Counted on its own.
                self.board.cut_short += 1
                await asyncio.sleep(PAUSE_AFTER_FAILURE)
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                body, problem = "", str(exc) or type(exc).__name__
            if problem:
                self._failed(problem)
            else:
                self.board.answer(body.split(maxsplit=1)[0], time.monotonic())
            await asyncio.sleep(PAUSE_AFTER_FAILURE if problem else PAUSE)

    def _failed(self, problem: str) -> None:
        if not self.board.counting:
            return  # before every replica has served, nginx's 502 is the template's empty case
        self.board.errors += 1
        now = time.monotonic()
        # Once a second at most: while no replica passes, every request gets a 502 at once.
        if now - self._reported >= 1.0:
            self._reported = now
            self.board.say(f"a request through nginx failed ({problem}); {self.board.errors} so far")
