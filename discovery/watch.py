"""Watch what the templates need, with a number of Consul connections that does not grow with it.

Per datacenter, three cluster-wide blocking queries tell *what* changed:

* ``/v1/health/state/critical`` and ``/v1/health/state/warning`` (one index for every check, but only
  the checks that are not passing in the answers: usually a handful, where ``state/any`` carries every
  check of the datacenter; Consul serves a status from its index by status, where a ``filter`` would be
  evaluated on every check at every wake-up). Together they are the complete non-passing state,
  compared with the last one
  (``discovery.problems``): a service whose non-passing checks changed, either way, is dirty (a flip to
  critical and back, a critical instance registered or removed); a node check (no service: serfHealth,
  maintenance) that changed makes every watched service with an instance on that node dirty. A missed
  wake-up heals on the next answer, which still differs from what was last seen.
* ``/v1/catalog/services`` (names and tags): a service whose tags changed, or that appeared or vanished,
  is dirty. When its index moves with no visible change and the health query saw no change at that same
  index (an instance registered or deregistered while passing, a registration without checks, an
  address change), every watched service is dirty.

A flip (a check going to warning or critical, or between the two) is not read at all: once both
status answers are at one index, the new statuses of the services they touch are derived from them
(``discovery.flips``, ``discovery.derive``). A recovery is read, since it looks exactly like an
instance deregistered while failing. Otherwise only dirty *watched* services are read again. A few are fetched one by one (``/v1/health/service/NAME``)
by a small pool of connections; many at once (the first render, the catalog fallback, the resync) are
read per node when that is cheaper (``discovery.bulk``: at 5,000 services on 4 nodes, 6 requests instead
of 5,000). Services read before both signal queries first answered are read again once they have, so
a change made in between is not lost. Large answers are decoded in a thread (``discovery.decoding``). KV keys (and ls/tree
prefixes) are watched with one recursive blocking query per datacenter. So at most 3 + pool (+1 with
keys) connections per datacenter (3 signal queries), whatever the number of services; nodes(), node() and datacenters() add
one more per datacenter and one shared (discovery/nodes.py). A full refresh of watched services runs
every ``RESYNC_EVERY`` seconds as a safety net.

Reachability is kept per datacenter (``discovery.reachability``; ``discovery.outages`` keeps it
current): a local failure means "Consul away" (``reachable`` is False, nothing is rendered); a remote
datacenter's failure puts it in ``away`` and its services keep their last good data. A remote
datacenter that has never answered ``FIRST_ANSWER_WAIT`` seconds after it failed has its missing
dependencies stood in for by empty data (``stand_ins``), so the first render is not held back forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from plumbing.latest import Latest
from plumbing.metrics import ConsulMetrics

from .blocking import BlockingQuery
from .catalog import parse_health
from .client import ConsulClient, unservable
from .datacenter import HEALTH_STATES, Datacenter
from .model import (
    Dependency,
    Instance,
    KeyQuery,
    PrefixQuery,
    ServiceQuery,
    Snapshot,
)
from .nodes import NodeWatch
from .outages import Outages
from .publisher import Answers, Publisher
from .reachability import FIRST_ANSWER_WAIT, Outage
from .reads import read_service

__all__ = ["Watcher"]

log = logging.getLogger(__name__)
RESYNC_EVERY = 600.0  # a full refresh of watched services now and then, as a safety net


class Watcher:
    """Keeps the data of the wanted dependencies current and publishes Snapshots on ``updates``."""

    def __init__(
        self,
        client: ConsulClient,
        *,
        wait: str = "5m",
        min_interval: float = 0.1,
        fetchers: int = 4,
        metrics: ConsulMetrics | None = None,
    ) -> None:
        self.client = client
        self.metrics = metrics or ConsulMetrics()
        self.wait = wait
        self.min_interval = min_interval
        self.updates: Latest[Snapshot] = Latest()
        self.reachable: bool | None = None
        self.reconnected_at: float | None = None  # monotonic time Consul last came back after an outage
        self.last_error: str | None = None
        self._fetchers = fetchers
        self._wanted: frozenset[Dependency] = frozenset()
        self._by_name: dict[str, list[ServiceQuery]] | None = None  # watched services by lower-cased name
        self._data: dict[Dependency, Any] = Answers()  # remembers what was set since the last publish
        self._read_at: dict[Dependency, int] = {}  # the index each service was last read at
        self._dcs: dict[str, Datacenter] = {}
        self._limit = asyncio.Semaphore(fetchers)
        self._tg: asyncio.TaskGroup | None = None
        self.away: dict[str, Outage] = {}  # remote datacenters that do not answer
        self.stand_ins: set[Dependency] = set()  # rendered empty: their datacenter never answered
        self._unreadable: set[ServiceQuery] = set()  # warned about once, until they read again
        self._tasks: set[asyncio.Task[None]] = set()
        self.nodes = NodeWatch(self, self._spawn)
        self._outages = Outages(self)  # what failed and answered queries change in the fields above
        self._publisher = Publisher()

    @property
    def wanted(self) -> frozenset[Dependency]:
        """The dependencies watched now."""
        return self._wanted

    def query(self, name: str, fetch: Any, dc: str = "") -> BlockingQuery[Any]:
        """A blocking query of datacenter ``dc`` that reports to this watcher whether it answers."""
        return BlockingQuery(
            name=name,
            fetch=fetch,
            wait=self.wait,
            min_interval=self.min_interval,
            on_error=lambda exc: self._outages.lost(dc, exc),
            on_success=lambda: self._outages.reached(dc),
        )

    def store(self, dep: Dependency, value: Any) -> None:
        """Keep an answer for a wanted dependency and publish the new snapshot."""
        self._store(dep, value)

    async def run(self) -> None:
        """Run the watch until cancelled, in a TaskGroup of its own."""
        async with asyncio.TaskGroup() as tg:
            self.start(tg)
            await asyncio.Future()  # run until cancelled

    def start(self, tg: asyncio.TaskGroup) -> None:
        """Start the watch's tasks in the caller's TaskGroup; they run until ``stop`` or the group ends."""
        self._tg = tg
        self._spawn(self.nodes.run())
        self._spawn(self._resync_loop())
        self.want(self._wanted, force=True)

    def stop(self) -> None:
        """Cancel every task ``start`` started (and those started since, per datacenter and KV prefix)."""
        for task in list(self._tasks):
            task.cancel()
        self._tg = None

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        assert self._tg is not None
        task = self._tg.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def want(self, deps: Iterable[Dependency], *, force: bool = False) -> None:
        """Watch exactly these dependencies from now on (new ones are fetched at once)."""
        wanted = frozenset(deps)
        if wanted == self._wanted and not force:
            return
        added = wanted - self._wanted if not force else wanted
        self._wanted, self._by_name = wanted, None
        self.metrics.watched_services.set(sum(1 for d in wanted if isinstance(d, ServiceQuery)))
        for dep in list(self._data):
            if dep not in wanted:
                del self._data[dep]  # forget what nobody reads, so memory follows the templates
                self._read_at.pop(dep, None)
        if self._tg is None:
            return
        for dc in sorted({d.dc for d in wanted}):
            self._datacenter(dc).watch_keys(
                frozenset(d.path for d in wanted if isinstance(d, KeyQuery) and d.dc == dc),
                frozenset(d.prefix for d in wanted if isinstance(d, PrefixQuery) and d.dc == dc),
            )
        self.nodes.want(wanted, added)
        for dc in list(self._dcs):
            self._dcs[dc].recoveries.keep_only(wanted)
            if not any(d.dc == dc for d in wanted):
                self._dcs[dc].watch_keys(frozenset())
        for query in (d for d in added if isinstance(d, ServiceQuery)):
            self._datacenter(query.dc).mark([query])
        for outage in list(self.away.values()):
            if time.monotonic() - outage.started >= FIRST_ANSWER_WAIT:
                self._outages.stand_in(outage.dc)  # a template now reads more of a datacenter long away
        self._publish()

    def _datacenter(self, dc: str) -> Datacenter:
        if dc not in self._dcs:
            self._dcs[dc] = d = Datacenter(self, dc)
            for state in HEALTH_STATES:
                self._spawn(d.watch_health(state))
            self._spawn(d.watch_catalog())
            self._spawn(d.fetch_loop(self._limit))
        return self._dcs[dc]

    def _mark_dirty(self, dc: str, names: set[str] | None) -> None:
        if dc not in self._dcs:
            return
        if names is None:
            self._dcs[dc].mark(d for d in self._wanted if isinstance(d, ServiceQuery) and d.dc == dc)
        else:
            self._dcs[dc].mark(self._named(dc, names))

    def _named(self, dc: str, names: Iterable[str]) -> list[ServiceQuery]:
        """The watched services of ``dc`` with these names (in any case)."""
        # Consul matches service names without case: a change to 'API' changes what 'api' reads. Looked
        # up by name, not by a walk of everything watched (a flip at 5,000 services: 1.5 ms).
        if self._by_name is None:
            self._by_name = {}
            for dep in self._wanted:
                if isinstance(dep, ServiceQuery):
                    self._by_name.setdefault(dep.name.lower(), []).append(dep)
        found = (q for n in {n.lower() for n in names} for q in self._by_name.get(n, ()))
        return [q for q in found if q.dc == dc]

    def _on_nodes(self, dc: str, nodes: set[str]) -> list[ServiceQuery]:
        """The services of ``dc`` read with an instance on one of these nodes (in any case)."""
        if not nodes:
            return []
        lowered = {n.lower() for n in nodes}  # Consul matches node names without case too
        return [
            dep
            for dep, value in self._data.items()
            if isinstance(dep, ServiceQuery)
            and dep.dc == dc
            and any(i.node.lower() in lowered for i in value)
        ]

    def _store(self, dep: Dependency, value: Any) -> None:
        if dep in self._wanted:
            self._data[dep] = value
            self.stand_ins.discard(dep)
            self._publish()

    def _publish(self) -> None:
        snapshot = self._publisher.publish(self._data)  # None: nothing changed (discovery.publisher)
        if snapshot is not None:
            self.updates.publish(snapshot)

    async def _fetch_one(self, query: ServiceQuery, limit: asyncio.Semaphore) -> None:
        # A name Consul cannot answer for by path reads as no instances: it must never stall the
        # other services (a fetch retried forever would hold up this whole batch) nor read another one.
        entries: Any = None
        index = 0
        problem = unservable(query.name)
        if problem is None:
            lost = self._outages.lost
            index, entries, problem = await read_service(self.client, self.metrics, query, limit, lost)
        if query not in self._wanted:
            return
        if problem is not None:
            self._unreadable_service(query, problem)
            self._data[query] = ()
            self.stand_ins.discard(query)
            return
        self._keep(query, parse_health(entries, query.dc, keep_order=bool(query.near)), index)

    def _keep(self, query: ServiceQuery, instances: tuple[Instance, ...], index: int | None = None) -> None:
        """Keep a service's instances as read at ``index`` (or derived: None), published with the batch."""
        if query in self._wanted:
            if index is not None:
                self._read_at[query] = index
            self._unreadable.discard(query)
            if self._data.get(query) != instances:  # an equal answer keeps the old tuple (identity is cheap)
                self._data[query] = instances
            self.stand_ins.discard(query)
            self._outages.reached(query.dc)

    def _unreadable_service(self, query: ServiceQuery, problem: str) -> None:
        if query not in self._unreadable:
            self._unreadable.add(query)
            log.warning("Service %r reads as no instances: %s.", query.name[:200], problem.rstrip("."))

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_EVERY)
            for dc in self._dcs:
                self._mark_dirty(dc, None)
