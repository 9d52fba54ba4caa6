"""The queries of one datacenter: its two signal queries, its KV query, and the reads of its services.

The design (what each signal query says and what is read again) is described in discovery.watch.

Each datacenter fetches its dirty services on its own loop, so one that does not answer (its fetches
retry forever) never holds back the services of the others.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os.path
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .blocking import BlockingQuery
from .bulk import BULK_MIN, bulk_candidates, read_bulk
from .catalog import parse_services
from .client import consul_errors, kv_prefix
from .flips import Flips
from .model import CatalogQuery, KeyQuery, PrefixQuery, ServiceQuery
from .problems import Problems, parse_problems
from .recoveries import Recoveries

if TYPE_CHECKING:
    from .watch import Watcher

__all__ = ["Datacenter"]

log = logging.getLogger(__name__)
EXPLAIN_GRACE = 0.25  # how long a catalog change waits for the health query to explain it
HEALTH_STATES = ("critical", "warning")  # the health signal: every check that is not passing


class Datacenter:
    """The signal queries of one datacenter and what they last said."""

    def __init__(self, watcher: Watcher, dc: str) -> None:
        self.watcher = watcher
        self.dc = dc
        self.problems = Problems()  # the non-passing checks both health queries last answered
        self.halves: dict[str, tuple[int, Problems]] = {}  # each status query's last index and answer
        self.health_index = 0
        self.health_changes: collections.deque[int] = collections.deque(maxlen=256)
        self.health_moved = asyncio.Event()
        self.catalog: dict[str, tuple[str, ...]] = {}
        self._summaries: Any = ()  # the parsed answer ``catalog`` was made from
        self.catalog_index = 0
        self.kv_task: asyncio.Task[None] | None = None
        self.kv_keys: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
        # Each datacenter fetches its dirty services on its own, so one that does not answer (its
        # fetches retry forever) never holds back the services of the others.
        self.dirty: set[ServiceQuery] = set()
        self.reading: set[ServiceQuery] = set()  # the batch being read now
        self.dirty_event = asyncio.Event()
        self.flips = Flips(self)
        self.recoveries = Recoveries(self)
        # Read before both signal queries first answered: a change in between would be in neither diff.
        self.unanchored: set[ServiceQuery] = set()

    def _query(self, name: str, fetch: Any) -> BlockingQuery[Any]:
        return self.watcher.query(f"{name}{'@' + self.dc if self.dc else ''}", fetch, self.dc)

    def mark(self, queries: Iterable[ServiceQuery]) -> None:
        """Fetch these services again soon."""
        self.dirty.update(queries)
        if self.dirty:
            self.dirty_event.set()

    async def fetch_loop(self, limit: asyncio.Semaphore) -> None:
        w = self.watcher
        while True:
            await self.dirty_event.wait()
            self.dirty_event.clear()
            batch = sorted(self.dirty & w.wanted)
            self.dirty.clear()
            if batch:
                log.debug("Fetching %d changed services%s.", len(batch), f" of {self.dc}" if self.dc else "")
                self.reading = set(batch)
                try:
                    rest = await self._read_bulk(batch, limit)
                    await asyncio.gather(*(w._fetch_one(q, limit) for q in rest))
                finally:
                    self.reading = set()
                if not (self.health_index and self.catalog_index):
                    self.unanchored.update(batch)
                w._publish()

    async def _read_bulk(self, batch: list[ServiceQuery], limit: asyncio.Semaphore) -> list[ServiceQuery]:
        """Read what a bulk read can of a large batch (discovery.bulk); return what is left to fetch."""
        candidates = bulk_candidates(batch)
        if len(candidates) < BULK_MIN:
            return batch
        answer = await read_bulk(self.watcher, self.dc, candidates, limit)
        if answer is None:
            return batch
        found, index = answer
        for query in candidates:
            self.watcher._keep(query, tuple(sorted(found[query.name.lower()])), index)
        done = set(candidates)
        return [q for q in batch if q not in done]

    async def watch_health(self, state: str) -> None:
        """One half of the health signal: every check in ``state`` ("critical" or "warning").

        Two queries by status, not one ``state/any?filter=Status != "passing"``: Consul answers a status
        from its index of checks by status, where a filter is evaluated on every check of the datacenter
        on every wake-up (measured at 20,000 checks: under 1 ms against 19-30 ms).
        """

        async def fetch(index: int, wait: str) -> tuple[Any, Any]:
            async with consul_errors(f"the health of every check that is {state}"):
                idx, checks = await self.watcher.client.health_state(
                    state=state, index=index, wait=wait, dc=self.dc or None
                )
            self.watcher.metrics.blocking_wakeups.labels(f"health-{state}").inc()
            return idx, (int(idx or 0), parse_problems(checks))

        async for idx, problems in self._query(f"health-{state}", fetch).changes():
            self.halves[state] = (idx, problems)
            self._health_answered(idx)

    def _health_answered(self, answered: int) -> None:
        """Diff the union of both halves with what was last seen (level-triggered either way);
        ``answered``: the index of the half that just answered."""
        if len(self.halves) < len(HEALTH_STATES):
            return  # until both halves answered, a check moving between them would look like a change
        problems = Problems.union(p for _, p in self.halves.values())
        services, nodes = problems.changed(self.problems)
        # Both halves share Consul's index of checks: the signal has seen everything up to the lower one.
        idx = min(i for i, _ in self.halves.values())
        self.problems, self.health_index = problems, idx
        if services or nodes:
            # What changed came with the answer just read, at its index: that index explains a catalog
            # move (the other half's may be later, from a change that explains nothing).
            self.health_changes.append(answered)
        self.health_moved.set()
        self.health_moved = asyncio.Event()
        self._anchor()
        self.flips.changed(services, nodes, consistent=len({i for i, _ in self.halves.values()}) == 1)

    async def watch_catalog(self) -> None:
        last: list[Any] = [None, ()]  # the last answer as Consul sent it, and as parsed

        async def fetch(index: int, wait: str) -> tuple[Any, Any]:
            async with consul_errors("the list of services"):
                idx, data = await self.watcher.client.catalog_services(
                    index=index, wait=wait, dc=self.dc or None
                )
            self.watcher.metrics.blocking_wakeups.labels("catalog-services").inc()
            # The index also moves when only health changed: an equal answer is not parsed again.
            if data is None or data != last[0]:
                last[:] = [data, parse_services(data)]
            return idx, (int(idx or 0), last[1])

        async for idx, summaries in self._query("catalog-services", fetch).changes():
            same = self.catalog_index != 0 and summaries is self._summaries
            new = self.catalog if same else {s.name: s.tags for s in summaries}
            old, first = self.catalog, self.catalog_index == 0
            self.catalog, self.catalog_index, self._summaries = new, idx, summaries
            self.watcher._store(CatalogQuery(self.dc), summaries)
            self.watcher.nodes.moved(self.dc)  # a service (de)registered on a watched node moves this index
            changed = set() if same else {n for n in old.keys() | new.keys() if old.get(n) != new.get(n)}
            if first:
                self._anchor()
                continue  # every watched service is fetched when it is first wanted: not twice at start
            if changed:
                self.watcher._mark_dirty(self.dc, changed)
            elif not await self._explained(idx):
                log.debug("Catalog index moved to %d with no visible change: refreshing every service.", idx)
                self.watcher._mark_dirty(self.dc, None)

    def _anchor(self) -> None:
        """Once both signal queries have answered, read again what was read before they did."""
        if self.unanchored and self.health_index and self.catalog_index:
            self.mark(self.unanchored)
            self.unanchored = set()

    async def _explained(self, idx: int) -> bool:
        """Whether the health query saw a change at exactly this index (one whose checks are not all passing)."""
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
