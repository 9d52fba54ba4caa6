"""nodes(), node(name) and datacenters(): catalog nodes as domain values, and how they are watched.

Per datacenter with a wanted node dependency, one blocking query on ``/v1/catalog/nodes`` tells when
nodes change; ``node(name)`` answers (``/v1/catalog/node/NAME``) are fetched again, one at a time, when
that index or the catalog's services index moves (a service registered on a node moves only the
latter). ``/v1/catalog/datacenters`` has no blocking form: it is polled. So at most one more long-held
connection per datacenter, and one short one shared by every node fetch and poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .catalog import MAX_STRING, valid_address
from .client import consul_errors
from .model import DatacentersQuery, Dependency, Node, NodeInfo, NodeQuery, NodeService, NodesQuery

if TYPE_CHECKING:
    from .watch import Watcher

__all__ = ["NodeWatch", "parse_datacenters", "parse_node", "parse_nodes"]

log = logging.getLogger(__name__)
DATACENTERS_EVERY = 30.0  # consul-template polls the datacenter list too; it changes with WAN joins


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) <= MAX_STRING else None


def _meta(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, Mapping):
        return ()
    return tuple(sorted((k, v) for k, v in raw.items() if _text(k) is not None and _text(v) is not None))


def _node(raw: Any, dc: str) -> Node | None:
    if not isinstance(raw, Mapping):
        return None
    name, address = _text(raw.get("Node")), _text(raw.get("Address"))
    if name is None or address is None or not valid_address(address):
        log.warning("Dropped node %r: its name or address is missing or invalid.", str(raw.get("Node"))[:80])
        return None
    return Node(
        name, address, _text(raw.get("Datacenter")) or dc, _text(raw.get("ID")) or "", _meta(raw.get("Meta"))
    )


def parse_nodes(data: Any, dc: str = "") -> tuple[Node, ...]:
    """A /v1/catalog/nodes answer as nodes sorted by name; invalid entries are dropped with a warning."""
    if not isinstance(data, list):
        return ()
    return tuple(sorted(n for n in (_node(raw, dc) for raw in data) if n is not None))


def _service(raw: Any, node: Node) -> NodeService | None:
    if not isinstance(raw, Mapping):
        return None
    sid, name, port = _text(raw.get("ID")), _text(raw.get("Service")), raw.get("Port")
    address = raw.get("Address") or node.address
    ok_port = isinstance(port, int) and not isinstance(port, bool) and 0 <= port <= 65535
    if sid is None or name is None or not ok_port or not valid_address(address):
        log.warning("Dropped service %r on node %r: invalid ID, name, port or address.", sid, node.name)
        return None
    tags = tuple(t for t in (raw.get("Tags") or []) if _text(t) is not None)
    return NodeService(sid, name, address, int(port or 0), tags, _meta(raw.get("Meta")))


def parse_node(data: Any, dc: str = "") -> NodeInfo | None:
    """A /v1/catalog/node/NAME answer as the node and its services sorted by ID; None for no such node."""
    if not isinstance(data, Mapping):
        return None
    node = _node(data.get("Node"), dc)
    if node is None:
        return None
    raw = data.get("Services") or {}
    items = raw.values() if isinstance(raw, Mapping) else raw if isinstance(raw, list) else []
    return NodeInfo(node, tuple(sorted(s for s in (_service(r, node) for r in items) if s is not None)))


def parse_datacenters(data: Any) -> tuple[str, ...]:
    """A /v1/catalog/datacenters answer, sorted."""
    return tuple(sorted(d for d in data if _text(d))) if isinstance(data, list) else ()


class NodeWatch:
    """Keeps nodes(), node(name) and datacenters() answers of the wanted dependencies current."""

    def __init__(self, watcher: Watcher, spawn: Callable[[Any], asyncio.Task[None]]) -> None:
        self.watcher = watcher
        self.spawn = spawn
        self.loops: dict[str, asyncio.Task[None]] = {}
        self.poll: asyncio.Task[None] | None = None
        self.dirty: set[NodeQuery] = set()
        self.event = asyncio.Event()

    def want(self, wanted: frozenset[Dependency], added: frozenset[Dependency]) -> None:
        """Start or stop the loops these dependencies need; fetch new node() answers at once."""
        dcs = {d.dc for d in wanted if isinstance(d, (NodesQuery, NodeQuery))}
        for dc in dcs - set(self.loops):
            self.loops[dc] = self.spawn(self._watch_nodes(dc))
        for dc in set(self.loops) - dcs:
            self.loops.pop(dc).cancel()
        wants_dcs = any(isinstance(d, DatacentersQuery) for d in wanted)
        if wants_dcs and self.poll is None:
            self.poll = self.spawn(self._poll_datacenters())
        elif not wants_dcs and self.poll is not None:
            self.poll.cancel()
            self.poll = None
        self.mark({d for d in added if isinstance(d, NodeQuery)})

    def moved(self, dc: str) -> None:
        """The catalog of a datacenter changed: its watched nodes may have other services now."""
        self.mark({d for d in self.watcher.wanted if isinstance(d, NodeQuery) and d.dc == dc})

    def mark(self, deps: set[NodeQuery]) -> None:
        if deps:
            self.dirty |= deps
            self.event.set()

    async def run(self) -> None:
        """Fetch dirty node() answers, one at a time, until cancelled."""
        while True:
            await self.event.wait()
            self.event.clear()
            batch, self.dirty = sorted(self.dirty), set()
            for query in batch:
                if query in self.watcher.wanted:
                    await self._fetch_node(query)

    async def _fetch_node(self, query: NodeQuery) -> None:
        async def fetch(index: int, wait: str) -> tuple[Any, Any]:
            async with consul_errors(f"the node '{query.name}'"):
                idx, data = await self.watcher.client.catalog.node(query.name, dc=query.dc or None)
            return idx, parse_node(data, query.dc)

        async for info in self.watcher.query(f"node {query.name}", fetch, query.dc).changes():
            self.watcher.store(query, info)
            return  # one answer: the nodes and services indexes say when to ask again

    async def _watch_nodes(self, dc: str) -> None:
        async def fetch(index: int, wait: str) -> tuple[Any, Any]:
            async with consul_errors("the list of nodes"):
                idx, data = await self.watcher.client.catalog.nodes(index=index, wait=wait, dc=dc or None)
            return idx, parse_nodes(data, dc)

        async for nodes in self.watcher.query(f"catalog-nodes{'@' + dc if dc else ''}", fetch, dc).changes():
            self.watcher.store(NodesQuery(dc), nodes)
            self.moved(dc)

    async def _poll_datacenters(self) -> None:
        async def fetch(index: int, wait: str) -> tuple[Any, Any]:
            async with consul_errors("the list of datacenters"):
                data = await self.watcher.client.catalog.datacenters()
            return None, parse_datacenters(data)

        while True:
            async for names in self.watcher.query("datacenters", fetch).changes():
                self.watcher.store(DatacentersQuery(), names)
                break
            await asyncio.sleep(DATACENTERS_EVERY)
