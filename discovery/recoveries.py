"""A blocking query held on the service that failed last, so that its recovery needs no read.

A recovery cannot be derived from the status answers (``discovery.derive``): a check leaving the
non-passing set looks the same as its instance deregistered while failing. So it is read, one round
trip after the answers, while a flip to critical costs none. For the service whose instance failed
last (the one most likely to come back next: a restart, a flapping check), a blocking query on
``/v1/health/service/NAME`` waits from the index of that flip; Consul answers it at the recovery's
index along with the status queries, and the flips see the service already read there.

``WATCHES`` bounds them: each holds a connection and one of the read pool's slots while it waits,
so the watch stays within its connection bound (with ``[consul] max_connections`` below ``ROOM``
there is none: every recovery is read). A watch ends once its service is all passing, when nobody
reads the service any more, or when a later failure takes its place; a recovery left to a watch that
ends before answering it is read at once (``owed``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .blocking import as_index
from .catalog import parse_health
from .client import consul_errors
from .model import Instance, ServiceQuery

if TYPE_CHECKING:
    from .datacenter import Datacenter

__all__ = ["WATCHES", "Recoveries"]

WATCHES = 1  # services watched at once for their recovery
ROOM = 8  # fewer [consul] max_connections than this: no watch (its connection would starve the reads)


class Recoveries:
    """The recovery watches of one datacenter."""

    def __init__(self, dc: Datacenter) -> None:
        self.dc = dc
        self._tasks: dict[ServiceQuery, asyncio.Task[None]] = {}  # oldest first
        self.waiting: set[ServiceQuery] = set()  # watches whose request is out: Consul answers it at once
        self.owed: dict[ServiceQuery, int] = {}  # recoveries left to a watch: the index it must answer at

    def leave(self, query: ServiceQuery, index: int) -> bool:
        """Whether the recovery of ``query`` seen at ``index`` is left to its watch (its request is out)."""
        if query not in self.waiting:
            return False
        self.owed[query] = max(index, self.owed.get(query, 0))
        return True

    def failed(self, query: ServiceQuery, index: int) -> None:
        """``query`` has an instance that is not passing, as seen at ``index``: watch it from there."""
        if query in self._tasks or query.near or self.dc.watcher.client.settings.max_connections < ROOM:
            return  # near: Consul sorts those per request; never worth a connection
        while len(self._tasks) >= WATCHES:
            self._stop(next(iter(self._tasks)))
        self._tasks[query] = self.dc.watcher._spawn(self._watch(query, index))

    def keep_only(self, wanted: frozenset[Any]) -> None:
        """Stop the watches of services nobody reads any more."""
        for query in [q for q in self._tasks if q not in wanted]:
            self._stop(query)

    def _stop(self, query: ServiceQuery) -> None:
        self._tasks.pop(query).cancel()
        self.waiting.discard(query)
        if self.owed.pop(query, None) is not None:
            # A recovery left to this watch (in this very round, say, before a later failure took its
            # place): no answer will bring it now, so it is read.
            self.dc.mark([query])

    async def _watch(self, query: ServiceQuery, index: int) -> None:
        watcher = self.dc.watcher
        blocking = watcher.query(f"recovery of {query}", self._fetch(query), self.dc.dc)
        blocking.start = index
        try:
            async for at, instances in blocking.changes():
                if query not in watcher.wanted:
                    return
                watcher._keep(query, instances, at)
                if query in self.dc.reading:
                    # A read sent before this answer may land after it with older data (a start-up's
                    # re-read, a resync): one more read after it, as a derivation would ask for.
                    self.dc.mark([query])
                if self.owed.get(query, at) <= at:
                    self.owed.pop(query, None)  # answered at (or after) the recovery left to it
                watcher._publish()
                if all(i.status == "passing" for i in instances):
                    return
        finally:
            self.waiting.discard(query)
            if self._tasks.get(query) is asyncio.current_task():
                del self._tasks[query]
                self.owed.pop(query, None)  # answered, or nobody reads the service any more

    def _fetch(self, query: ServiceQuery) -> Any:
        watcher, where = self.dc.watcher, self.dc.dc or None

        async def fetch(index: int, wait: str) -> tuple[Any, tuple[int, tuple[Instance, ...]]]:
            async with watcher._limit, consul_errors(f"the health of service '{query.name}'"):
                self.waiting.add(query)
                try:
                    at, entries = await watcher.client.health_service(
                        query.name, dc=where, near=None, index=index, wait=wait
                    )
                finally:
                    self.waiting.discard(query)
            return at, (as_index(at), parse_health(entries, query.dc))

        return fetch
