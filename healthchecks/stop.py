"""On stop (with ``deregister_on_stop``): remove every service this host owns, bounded in time."""

from __future__ import annotations

import asyncio
import logging

from plumbing.errors import ConsulError

from .agent import Agent
from .metrics import RegistrarMetrics
from .plan import owned_ids

__all__ = ["deregister_owned"]

log = logging.getLogger(__name__)


async def deregister_owned(agent: Agent, owner: str, timeout: float, metrics: RegistrarMetrics) -> None:
    """Deregister every service ``owner`` owns on the agent, giving up after ``timeout`` seconds."""

    async def all_owned() -> int:
        ids = owned_ids(await agent.services(), owner)
        await asyncio.gather(*(agent.deregister(sid) for sid in ids))
        return len(ids)

    try:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation (SIGTERM).
        async with asyncio.timeout(timeout):
            count = await all_owned()
        metrics.deregistrations.inc(count)
        log.info("Deregistered %d services on stop.", count)
    except (ConsulError, TimeoutError) as exc:
        # str(TimeoutError()) is empty: say what happened instead.
        log.warning("Could not deregister on stop: %s", str(exc) or f"timed out after {timeout:g}s")
