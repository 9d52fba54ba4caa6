"""One service read from Consul (``/v1/health/service/NAME``): the watch's one-by-one read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import consul.exceptions
import tenacity

from plumbing.errors import ConsulError, first_line
from plumbing.metrics import ConsulMetrics

from .blocking import as_index, consul_retrying
from .client import ConsulClient, consul_errors
from .model import ServiceQuery

__all__ = ["read_service"]


async def read_service(
    client: ConsulClient,
    metrics: ConsulMetrics,
    query: ServiceQuery,
    limit: asyncio.Semaphore,
    lost: Callable[[str, ConsulError], None],
) -> tuple[int, Any, str | None]:
    """(index, entries, None), retried while Consul is away (each failure told to ``lost``); or
    (0, None, why) when Consul refuses this name."""

    def report(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ConsulError):
            lost(query.dc, exc)

    async for attempt in consul_retrying(report):
        with attempt:
            async with limit, consul_errors(f"the health of service '{query.name}'"):
                with metrics.fetch_seconds.time():
                    try:
                        at, entries = await client.health_service(
                            query.name, dc=query.dc or None, near=query.near or None
                        )
                    except consul.exceptions.BadRequest as exc:
                        # 400 is about the request itself: retrying the same name cannot help.
                        return 0, None, f"Consul refused the query ({first_line(exc).strip()})"
    return as_index(at), entries, None
