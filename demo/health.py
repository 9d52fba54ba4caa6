"""The demo's own view of Consul: a blocking query on the prime service's health, which timestamps each
change of a replica's status the moment Consul reports it (the start of every measured latency)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from discovery.blocking import BlockingQuery
from discovery.catalog import parse_health
from plumbing.errors import ConsulUnavailable

from .board import Board
from .replicas import SERVICE

__all__ = ["watch_health"]

WAIT = "30s"


async def watch_health(address: str, token: str | None, board: Board) -> None:
    """Follow the service's health until cancelled, writing every change of a replica to the board."""
    headers = {"X-Consul-Token": token} if token else {}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=40)) as session:

        async def fetch(index: int, wait: str) -> tuple[str | None, list[dict[str, Any]]]:
            params = {"index": str(index), "wait": wait} if index else {}
            try:
                async with session.get(f"{address}/v1/health/service/{SERVICE}", params=params) as resp:
                    resp.raise_for_status()
                    return resp.headers.get("X-Consul-Index"), await resp.json()
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                raise ConsulUnavailable(f"Consul at {address} did not answer: {exc}") from exc

        # min_interval 0: the change's timestamp must be when Consul reported it, not when a rate limit ran.
        query = BlockingQuery(name=SERVICE, fetch=fetch, wait=WAIT, min_interval=0.0)
        async for entries in query.changes():
            # Each instance's worst check (node checks included), parsed as the sidecar parses it.
            _apply(board, {i.port: i.status for i in parse_health(entries)}, time.monotonic())


def _apply(board: Board, statuses: dict[int, str], at: float) -> None:
    for row in list(board.rows.values()):
        status = statuses.get(row.replica.port)
        if status is None:
            status = "unregistered" if row.health == "unregistered" else "gone"
        if status != row.health:
            board.health(row, status, at)
