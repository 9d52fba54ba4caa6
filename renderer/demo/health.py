"""The demo's own view of Consul: a blocking query on the prime service's health, which timestamps each
change of a replica's status the moment Consul reports it (the start of every measured latency)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from discovery.blocking import BlockingQuery
from discovery.errors import ConsulUnavailable

from .board import Board
from .replicas import SERVICE

__all__ = ["watch_health", "worst_by_port"]

WAIT = "30s"
ORDER = ("passing", "warning", "critical")


def worst_by_port(entries: list[dict[str, Any]]) -> dict[int, str]:
    """Port -> the worst status of each instance's checks (node checks included), as the sidecar sees it."""
    out: dict[int, str] = {}
    for entry in entries:
        statuses = [c.get("Status", "critical") for c in entry.get("Checks") or ()]
        worst = max(statuses, key=lambda s: ORDER.index(s) if s in ORDER else 2, default="passing")
        out[int(entry["Service"]["Port"])] = worst
    return out


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
            _apply(board, worst_by_port(entries), time.monotonic())


def _apply(board: Board, statuses: dict[int, str], at: float) -> None:
    for row in list(board.rows.values()):
        status = statuses.get(row.replica.port)
        if status is None:
            status = "unregistered" if row.health == "unregistered" else "gone"
        if status != row.health:
            board.health(row, status, at)
