"""Watch what the templates need, with a number of Consul connections that does not grow with it.

Per datacenter, two cluster-wide blocking queries tell *what* changed:

* ``/v1/health/state/any`` (every check, one index): a service whose checks changed (status, a check
  added or removed, a re-registration) is dirty; a change to node checks makes every service dirty.
* ``/v1/catalog/services`` (names and tags): a service whose tags changed, or that appeared or vanished,
  is dirty. When its index moves with no visible change and the health query saw no change at that same
  index (a registration without checks, an address change), every watched service is dirty.

Only dirty *watched* services are fetched again (``/v1/health/service/NAME``), by a small pool of
connections. KV keys (and ls/tree prefixes) are watched with one recursive blocking query per
datacenter. So at most 2 + pool (+1 with keys) connections per datacenter, whatever the number of
services; nodes(), node() and datacenters() add one more per datacenter and one shared (discovery/nodes.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os.path
import time
from collections.abc import Iterable
from typing import Any

import consul.exceptions
import tenacity

from .blocking import BlockingQuery, consul_retrying
from .catalog import check_fingerprints, parse_health, parse_services
from .consul import ConsulClient, consul_errors, kv_prefix, unservable
from .errors import ConsulError, first_line
from .latest import Latest
from .metrics import ConsulMetrics
from .model import (
    CatalogQuery,
    Dependency,
    Instance,
    KeyQuery,
    PrefixQuery,
    ServiceQuery,
    ServiceSummary,
    Snapshot,
)
from .nodes import NodeWatch

__all__ = ["Watcher"]

log = logging.getLogger(__name__)
EXPLAIN_GRACE = 0.25  # how long a catalog change waits for the health query to explain it
RESYNC_EVERY = 600.0  # a full refresh of watched services now and then, as a safety net


class _Datacenter:
    """The signal queries of one datacenter and what they last said."""

    def __init__(self, watcher: Watcher, dc: str) -> None:
        self.watcher = watcher
        self.dc = dc
        self.fingerprints: dict[str, frozenset[Any]] = {}
        self.health_index = 0
        self.health_changes: collections.deque[int] = collections.deque(maxlen=256)
        self.health_moved = asyncio.Event()
        self.catalog: dict[str, tuple[str, ...]] = {}
        self.catalog_index = 0
        self.kv_task: asyncio.Task[None] | None = None
        self.kv_keys: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())

    def _query(self, name: str, fetch: Any) -> BlockingQuery[Any]:
        return self.watcher.query(f"{name}{'@' + self.dc if self.dc else ''}", fetch)

    async def watch_health(self) -> None:
        async def fetch(index: int, wait: str) -> tuple[Any, Any]:
            async with consul_errors("the health of every check"):
                idx, checks = await self.watcher.client.health.state(
                    "any", index=index, wait=wait, dc=self.dc or None
                )
            self.watcher.metrics.blocking_wakeups.labels("health-state").inc()
            return idx, (int(idx or 0), check_fingerprints(checks))

        async for idx, prints in self._query("health-state", fetch).changes():
            old, self.fingerprints = self.fingerprints, prints
            changed = {s for s in old.keys() | prints.keys() if old.get(s) != prints.get(s)}
            self.health_index = idx
            if changed:
                self.health_changes.append(idx)
            self.health_moved.set()
            self.health_moved = asyncio.Event()
            if "" in changed:
                self.watcher._mark_dirty(self.dc, None)  # a node check changed: every service on it may have
            elif changed:
                self.watcher._mark_dirty(self.dc, changed)

    async def watch_catalog(self) -> None:
        async def fetch(index: int, wait: str) -> tuple[Any, Any]:
            async with consul_errors("the list of services"):
                idx, data = await self.watcher.client.catalog.services(
                    index=index, wait=wait, dc=self.dc or None
                )
            self.watcher.metrics.blocking_wakeups.labels("catalog-services").inc()
            return idx, (int(idx or 0), parse_services(data))

        async for idx, summaries in self._query("catalog-services", fetch).changes():
            new = {s.name: s.tags for s in summaries}
            old, first = self.catalog, self.catalog_index == 0
            self.catalog, self.catalog_index = new, idx
            self.watcher._store(CatalogQuery(self.dc), summaries)
            self.watcher.nodes.moved(self.dc)  # a service (de)registered on a watched node moves this index
            changed = {n for n in old.keys() | new.keys() if old.get(n) != new.get(n)}
            if changed:
                self.watcher._mark_dirty(self.dc, changed)
            elif not first and not await self._explained(idx):
                log.debug("Catalog index moved to %d with no visible change: refreshing every service.", idx)
                self.watcher._mark_dirty(self.dc, None)

    async def _explained(self, idx: int) -> bool:
        """Whether the health query saw a change at exactly this index (a registration with checks)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + EXPLAIN_GRACE
        while self.health_index < idx and loop.time() < deadline:
            moved = self.health_moved
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation (SIGTERM).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline - loop.time()):
                    await moved.wait()
        return idx in self.health_changes

    def watch_keys(self, keys: frozenset[str], prefixes: frozenset[str] = frozenset()) -> None:
        """(Re)start the KV query for exactly these keys and prefixes (ls/tree)."""
        if (keys, prefixes) == self.kv_keys:
            return
        if self.kv_task:
            self.kv_task.cancel()
        self.kv_keys, self.kv_task = (keys, prefixes), None
        if keys or prefixes:
            self.kv_task = self.watcher._spawn(self._watch_kv(keys, prefixes))

    async def _watch_kv(self, keys: frozenset[str], prefixes: frozenset[str]) -> None:
        # Character-wise on purpose: KV keys are strings, and a recursive KV read takes any prefix;
        # shortened where Consul would rewrite or refuse the path (the exact keys are picked below).
        prefix = kv_prefix(os.path.commonprefix(sorted(keys | prefixes)))  # noqa: RUF071

        async def fetch(index: int, wait: str) -> tuple[Any, Any]:
            async with consul_errors(f"the KV prefix '{prefix}'"):
                idx, items = await self.watcher.client.kv.get(
                    prefix, recurse=True, index=index, wait=wait, dc=self.dc or None
                )
            values: dict[str, str | None] = dict.fromkeys(keys)
            pairs: list[tuple[str, str]] = []
            for item in items or []:
                raw = item.get("Value")
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
                if item.get("Key") in keys:
                    values[item["Key"]] = text
                if isinstance(item.get("Key"), str):
                    pairs.append((item["Key"], text))
            under = {p: tuple(sorted(kv for kv in pairs if kv[0].startswith(p))) for p in prefixes}
            return idx, (values, under)

        async for values, under in self._query(f"kv {prefix!r}", fetch).changes():
            for key, value in values.items():
                self.watcher._store(KeyQuery(key, self.dc), value)
            for name, found in under.items():
                self.watcher._store(PrefixQuery(name, self.dc), found)


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
        self._data: dict[Dependency, Any] = {}
        self._dcs: dict[str, _Datacenter] = {}
        self._dirty: set[ServiceQuery] = set()
        self._dirty_event = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._unreadable: set[ServiceQuery] = set()  # warned about once, until they read again
        self._tasks: set[asyncio.Task[None]] = set()
        self.nodes = NodeWatch(self, self._spawn)

    @property
    def wanted(self) -> frozenset[Dependency]:
        """The dependencies watched now."""
        return self._wanted

    def query(self, name: str, fetch: Any) -> BlockingQuery[Any]:
        """A blocking query that reports to this watcher whether Consul answers."""
        return BlockingQuery(
            name=name,
            fetch=fetch,
            wait=self.wait,
            min_interval=self.min_interval,
            on_error=self._lost,
            on_success=self._reached,
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
        self._spawn(self._fetch_loop())
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
        self._wanted = wanted
        self.metrics.watched_services.set(sum(1 for d in wanted if isinstance(d, ServiceQuery)))
        for dep in list(self._data):
            if dep not in wanted:
                del self._data[dep]  # forget what nobody reads, so memory follows the templates
        if self._tg is None:
            return
        for dc in sorted({d.dc for d in wanted}):
            self._datacenter(dc).watch_keys(
                frozenset(d.path for d in wanted if isinstance(d, KeyQuery) and d.dc == dc),
                frozenset(d.prefix for d in wanted if isinstance(d, PrefixQuery) and d.dc == dc),
            )
        self.nodes.want(wanted, added)
        for dc in list(self._dcs):
            if not any(d.dc == dc for d in wanted):
                self._dcs[dc].watch_keys(frozenset())
        new_services = {d for d in added if isinstance(d, ServiceQuery)}
        if new_services:
            self._dirty |= new_services
            self._dirty_event.set()
        self._publish()

    def _datacenter(self, dc: str) -> _Datacenter:
        if dc not in self._dcs:
            self._dcs[dc] = d = _Datacenter(self, dc)
            self._spawn(d.watch_health())
            self._spawn(d.watch_catalog())
        return self._dcs[dc]

    def _mark_dirty(self, dc: str, names: set[str] | None) -> None:
        lowered = {n.lower() for n in names or ()}
        for dep in self._wanted:
            # Consul matches service names without case: a change to 'API' changes what 'api' reads.
            if (
                isinstance(dep, ServiceQuery)
                and dep.dc == dc
                and (names is None or dep.name.lower() in lowered)
            ):
                self._dirty.add(dep)
        if self._dirty:
            self._dirty_event.set()

    def _store(self, dep: Dependency, value: Any) -> None:
        if dep in self._wanted:
            self._data[dep] = value
            self._publish()

    def _publish(self) -> None:
        services: dict[ServiceQuery, tuple[Instance, ...]] = {}
        catalogs: dict[CatalogQuery, tuple[ServiceSummary, ...]] = {}
        keys: dict[KeyQuery, str | None] = {}
        others: dict[Any, Any] = {}
        for dep, value in self._data.items():
            if isinstance(dep, ServiceQuery):
                services[dep] = value
            elif isinstance(dep, CatalogQuery):
                catalogs[dep] = value
            elif isinstance(dep, KeyQuery):
                keys[dep] = value
            else:
                others[dep] = value
        snapshot = Snapshot.build(services, catalogs, keys, others)
        if snapshot != self.updates.value:
            self.updates.publish(snapshot)

    async def _fetch_loop(self) -> None:
        limit = asyncio.Semaphore(self._fetchers)
        while True:
            await self._dirty_event.wait()
            self._dirty_event.clear()
            batch = sorted(self._dirty & self._wanted)
            self._dirty.clear()
            if batch:
                log.debug("Fetching %d changed services.", len(batch))
                await asyncio.gather(*(self._fetch_one(q, limit) for q in batch))
                self._publish()

    async def _fetch_one(self, query: ServiceQuery, limit: asyncio.Semaphore) -> None:
        # A name Consul cannot answer for by path reads as no instances: it must never stall the
        # other services (a fetch retried forever would hold up this whole batch) nor read another one.
        entries: Any = None
        problem = unservable(query.name)
        if problem is None:
            entries, problem = await self._fetch_health(query, limit)
        if query not in self._wanted:
            return
        if problem is not None:
            self._unreadable_service(query, problem)
            self._data[query] = ()
            return
        self._unreadable.discard(query)
        self._data[query] = parse_health(entries, query.dc, keep_order=bool(query.near))
        self._reached()

    async def _fetch_health(self, query: ServiceQuery, limit: asyncio.Semaphore) -> tuple[Any, str | None]:
        """(entries, None), retried while Consul is away; or (None, why) when Consul refuses this name."""

        def report(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, ConsulError):
                self._lost(exc)

        async for attempt in consul_retrying(report):
            with attempt:
                async with limit, consul_errors(f"the health of service '{query.name}'"):
                    with self.metrics.fetch_seconds.time():
                        try:
                            _, entries = await self.client.health_service(
                                query.name, dc=query.dc or None, near=query.near or None
                            )
                        except consul.exceptions.BadRequest as exc:
                            # 400 is about the request itself: retrying the same name cannot help.
                            return None, f"Consul refused the query ({first_line(exc).strip()})"
        return entries, None

    def _unreadable_service(self, query: ServiceQuery, problem: str) -> None:
        if query not in self._unreadable:
            self._unreadable.add(query)
            log.warning("Service %r reads as no instances: %s.", query.name[:200], problem.rstrip("."))

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_EVERY)
            for dc in self._dcs:
                self._mark_dirty(dc, None)

    def _lost(self, exc: ConsulError) -> None:
        self.metrics.consul_errors.inc()
        self.metrics.consul_up.set(0)
        if self.reachable is not False:
            log.warning("Lost Consul: %s Keeping the last good files live.", exc)
        self.reachable, self.last_error = False, str(exc)

    def _reached(self) -> None:
        self.metrics.consul_up.set(1)
        if self.reachable is False:
            log.info("Consul is reachable again; resynchronising.")
            self.reconnected_at = time.monotonic()
            for dc in self._dcs:
                self._mark_dirty(dc, None)
            if self.updates.value is not None:
                # Wake the consumer even if nothing changed: it skipped renders while Consul was away.
                self.updates.publish(self.updates.value)
        self.reachable, self.last_error = True, None
