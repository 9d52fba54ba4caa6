"""What the health signal said changed in one datacenter: derived where it can be, read where not.

``Datacenter`` hands every diff of the two status answers to ``Flips.changed``. When both answers are
at one index, their union is a consistent view of every non-passing check, and each watched service
it touches gets its new statuses from it (``discovery.derive``) with no read; a service the
derivation cannot answer for is read again. Until both answers are at one index (the second is
usually a millisecond behind the first), the changes wait; after ``HALF_WAIT`` they are read, so a
signal whose halves keep missing each other under churn still converges. A recovery left to its
service's recovery watch (``discovery.recoveries``) is read at once if that watch stops first, and
anyway when no answer at its index came within ``RECOVERY_WAIT``: a lost answer must not leave an
instance out of rotation until the resync.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .derive import Lowered, derive, lowered
from .model import Instance, ServiceQuery
from .problems import Problems

if TYPE_CHECKING:
    from .datacenter import Datacenter

__all__ = ["HALF_WAIT", "RECOVERY_WAIT", "Flips"]

HALF_WAIT = 0.05  # seconds the changes of one half wait for the other half to reach its index
RECOVERY_WAIT = 0.25  # seconds a recovery left to its watch may take before it is read all the same


class Flips:
    """The health changes of one datacenter not applied yet."""

    def __init__(self, dc: Datacenter) -> None:
        self.dc = dc
        self.services: set[str] = set()
        self.nodes: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None

    def changed(self, services: set[str], nodes: set[str], consistent: bool) -> None:
        """Services and nodes whose non-passing checks changed; ``consistent``: both halves at one index."""
        self.services |= services
        self.nodes |= nodes
        if not (self.services or self.nodes):
            return
        if consistent:
            self._derive()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(HALF_WAIT, self._read)

    def _take(self) -> tuple[set[str], set[str]]:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        taken = self.services, self.nodes
        self.services, self.nodes = set(), set()
        return taken

    def _read(self) -> None:
        """The halves did not meet in time: read what changed, as if nothing could be derived."""
        self._timer = None
        services, nodes = self._take()
        watcher, dc = self.dc.watcher, self.dc.dc
        self.dc.mark(watcher._named(dc, services))
        self.dc.mark(watcher._on_nodes(dc, nodes))  # a node check: every instance on the node

    def _derive(self) -> None:
        services, nodes = self._take()
        watcher, dc = self.dc.watcher, self.dc.dc
        queries = {*watcher._named(dc, services), *watcher._on_nodes(dc, nodes)}
        after = self.dc.problems
        names = lowered(after)
        read: list[ServiceQuery] = []
        left: list[ServiceQuery] = []  # to their recovery watch, which brings the answer at once
        recoveries = self.dc.recoveries
        for query in sorted(queries):
            derived = self._derived(query, after, names)
            if derived is None:
                (left if recoveries.leave(query, self.dc.health_index) else read).append(query)
                continue
            watcher._keep(query, derived)
            if any(i.status != "passing" for i in derived):
                recoveries.failed(query, self.dc.health_index)
        self.dc.mark(read)
        if left:
            asyncio.get_running_loop().call_later(RECOVERY_WAIT, self._unanswered, left, self.dc.health_index)
        watcher._publish()

    def _unanswered(self, left: list[ServiceQuery], index: int) -> None:
        """Read the recoveries whose watch brought no answer at ``index`` (one seen lost in a race)."""
        watcher = self.dc.watcher
        wanted = watcher.wanted
        self.dc.mark(q for q in left if q in wanted and watcher._read_at.get(q, 0) < index)

    def _derived(self, query: ServiceQuery, after: Problems, names: Lowered) -> tuple[Instance, ...] | None:
        """The service's new instances, or None where it must be read."""
        watcher, dc = self.dc.watcher, self.dc
        if not (dc.health_index and dc.catalog_index) or query in dc.dirty or query in dc.reading:
            return None  # not anchored yet, or a read is due or running: it will say more than we can
        if query in watcher.stand_ins or query not in watcher._data:
            return None
        read_at, instances = watcher._read_at.get(query), watcher._data[query]
        if read_at is None:
            return None
        if read_at >= dc.health_index:
            return instances  # type: ignore[no-any-return]  # read at or after the answers: shows them
        return derive(instances, query.name, after, names)
