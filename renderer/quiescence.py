"""Waiting before a round: until Consul has been quiet (wait.min / wait.max), and, right after Consul
returns from an outage, until it has settled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from .debounce import Quiescence

__all__ = ["RECONNECT_SETTLE", "quiesce", "settle"]

log = logging.getLogger("renderer.daemon")  # split out of the daemon: its lines keep their logger name
RECONNECT_SETTLE = 2.0  # seconds after Consul returns from an outage before its answers are rendered


async def quiesce(policy: Callable[[], Quiescence], clock: Callable[[], float], kick: asyncio.Event) -> None:
    """Hold a data change back until Consul has been quiet for wait.min (at most wait.max).

    ``policy`` is asked again on each wake: a SIGHUP replaces the policy (and kicks) while we wait.
    """
    while (delay := policy().delay(clock())) > 0:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation (SIGTERM).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await kick.wait()
        kick.clear()


async def settle(reconnected_at: float | None) -> None:
    """Right after Consul returns from an outage (monotonic ``reconnected_at``), let it settle before
    trusting what it says.

    A restarted Consul can answer for a moment with an incomplete catalog (seen: a service with no
    instances for ~100 ms until anti-entropy re-synced). Rendering that would empty live upstreams.
    """
    if reconnected_at is None:
        return
    remaining = reconnected_at + RECONNECT_SETTLE - time.monotonic()
    if remaining > 0:
        log.info("Consul just came back; waiting %.1fs for it to settle before rendering.", remaining)
        await asyncio.sleep(remaining)
