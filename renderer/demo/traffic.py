"""A steady trickle of requests through nginx, counting the answers of each replica."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from .board import Board

__all__ = ["Traffic"]

PAUSE = 0.005  # between one client's requests; two clients give a few hundred requests a second


class Traffic:
    """HTTP clients of the demo's nginx; a new connection per request, so nginx balances each one."""

    def __init__(self, url: str, board: Board) -> None:
        self.url = url
        self.board = board
        self._session: aiohttp.ClientSession | None = None

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
                    ok = resp.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok, body = False, ""
            name = body.split(maxsplit=1)[0] if ok and body.strip() else ""
            if name:
                self.board.answer(name, time.monotonic())
            else:
                self.board.errors += 1
            await asyncio.sleep(PAUSE)
