"""Domain values: frozen, sorted, so equal catalogs compare equal and render equal bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

__all__ = [
    "STATUS_ORDER",
    "CatalogQuery",
    "DatacentersQuery",
    "Dependency",
    "Instance",
    "KeyQuery",
    "Node",
    "NodeInfo",
    "NodeQuery",
    "NodeService",
    "NodesQuery",
    "PrefixQuery",
    "ServiceQuery",
    "ServiceSummary",
    "Snapshot",
    "Status",
]

Status = Literal["passing", "warning", "critical"]
STATUS_ORDER: dict[str, int] = {"passing": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True, order=True, slots=True)
class ServiceQuery:
    """What is fetched for ``service()``: every instance of a service in a datacenter ('' = the agent's)."""

    name: str
    dc: str = ""
    near: str = ""

    def __str__(self) -> str:
        return self.name + (f"@{self.dc}" if self.dc else "") + (f" near {self.near}" if self.near else "")


@dataclass(frozen=True, order=True, slots=True)
class CatalogQuery:
    """What is fetched for ``services()``: the names and tags of every service in a datacenter."""

    dc: str = ""

    def __str__(self) -> str:
        return "services" + (f"@{self.dc}" if self.dc else "")


@dataclass(frozen=True, order=True, slots=True)
class KeyQuery:
    """What is fetched for ``key()``: one Consul KV value."""

    path: str
    dc: str = ""

    def __str__(self) -> str:
        return f"key {self.path}" + (f"@{self.dc}" if self.dc else "")


@dataclass(frozen=True, order=True, slots=True)
class PrefixQuery:
    """What is fetched for ``ls()`` and ``tree()``: every KV pair under a prefix (ending in '/' or '')."""

    prefix: str
    dc: str = ""

    def __str__(self) -> str:
        return f"keys under {self.prefix or '/'}" + (f"@{self.dc}" if self.dc else "")


@dataclass(frozen=True, order=True, slots=True)
class NodesQuery:
    """What is fetched for ``nodes()``: every node of a datacenter."""

    dc: str = ""

    def __str__(self) -> str:
        return "nodes" + (f"@{self.dc}" if self.dc else "")


@dataclass(frozen=True, order=True, slots=True)
class NodeQuery:
    """What is fetched for ``node(name)``: one node and the services registered on it."""

    name: str
    dc: str = ""

    def __str__(self) -> str:
        return f"node {self.name}" + (f"@{self.dc}" if self.dc else "")


@dataclass(frozen=True, order=True, slots=True)
class DatacentersQuery:
    """What is fetched for ``datacenters()``: the names of every known datacenter."""

    dc: str = ""  # always '': asked of the local agent (kept so every dependency has a datacenter)

    def __str__(self) -> str:
        return "datacenters"


Dependency = ServiceQuery | CatalogQuery | KeyQuery | PrefixQuery | NodesQuery | NodeQuery | DatacentersQuery


@dataclass(frozen=True, order=True, slots=True)
class Instance:
    """One healthy-or-not instance of a service, validated; ``address`` already falls back to the node's."""

    node: str
    id: str
    name: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()
    weight: int = 1
    status: Status = "passing"
    datacenter: str = ""
    node_address: str = ""
    node_meta: tuple[tuple[str, str], ...] = ()
    weights: tuple[int, int] = (1, 1)  # (passing, warning) as registered, clamped; ``weight`` is its status's

    @property
    def meta_dict(self) -> dict[str, str]:
        """Meta as a mapping, for templates."""
        return dict(self.meta)


@dataclass(frozen=True, order=True, slots=True)
class ServiceSummary:
    """A service name with the union of its instances' tags."""

    name: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, order=True, slots=True)
class Node:
    """A node of the catalog."""

    name: str
    address: str
    datacenter: str = ""
    id: str = ""
    meta: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, order=True, slots=True)
class NodeService:
    """A service registered on a node, as the catalog lists it (no health)."""

    id: str
    name: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, order=True, slots=True)
class NodeInfo:
    """A node and its services, sorted by service ID."""

    node: Node
    services: tuple[NodeService, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """Everything the templates may read, at one moment; each part sorted by its query.

    A watcher's snapshots also say what changed between them (``changes_since``), so a consumer never
    compares two of them whole: ``lineage`` names the watcher's series, ``version`` counts its
    snapshots and ``history`` holds what changed at each of the last versions. None of the three is
    a constructor argument (``dataclasses.replace`` must not copy them onto other contents), nor
    part of equality; only ``discovery.publisher`` sets them.
    """

    services: tuple[tuple[ServiceQuery, tuple[Instance, ...]], ...] = ()
    catalogs: tuple[tuple[CatalogQuery, tuple[ServiceSummary, ...]], ...] = ()
    keys: tuple[tuple[KeyQuery, str | None], ...] = ()
    # ls/tree, nodes, node and datacenters answers, sorted by query type then query.
    others: tuple[tuple[Any, Any], ...] = ()
    lineage: object = field(default=None, init=False, compare=False, repr=False)
    version: int = field(default=0, init=False, compare=False, repr=False)
    history: tuple[frozenset[Dependency], ...] = field(default=(), init=False, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        services: dict[ServiceQuery, tuple[Instance, ...]],
        catalogs: dict[CatalogQuery, tuple[ServiceSummary, ...]],
        keys: dict[KeyQuery, str | None],
        others: dict[Any, Any] | None = None,
    ) -> Snapshot:
        """Make a snapshot from mappings, sorting everything."""
        return cls(
            services=tuple(sorted(services.items())),
            catalogs=tuple(sorted(catalogs.items())),
            keys=tuple(sorted(keys.items())),
            others=tuple(sorted((others or {}).items(), key=lambda kv: (type(kv[0]).__name__, kv[0]))),
        )

    @cached_property
    def _lookup(self) -> dict[Dependency, object]:
        return {**dict(self.services), **dict(self.catalogs), **dict(self.keys), **dict(self.others)}

    def changes_since(self, old: Snapshot) -> frozenset[Dependency] | None:
        """Every dependency whose answer changed from ``old`` to this one; None when that is not known
        (another series, or further back than the history), and then only a comparison can say."""
        if old is self:
            return frozenset()
        steps = self.version - old.version
        if self.lineage is None or old.lineage is not self.lineage or not 0 <= steps <= len(self.history):
            return None
        recent = self.history[len(self.history) - steps :] if steps else ()
        # Changed and changed back counts as changed: callers compare the few they are given.
        return recent[0] if len(recent) == 1 else frozenset().union(*recent)

    def has(self, dep: Dependency) -> bool:
        """Whether this snapshot holds an answer for a dependency."""
        return dep in self._lookup

    def get(self, dep: Dependency) -> object:
        """The answer for a dependency; KeyError when Consul has not answered it yet."""
        return self._lookup[dep]

    @property
    def dependencies(self) -> frozenset[Dependency]:
        """Every dependency this snapshot answers."""
        return frozenset(self._lookup)
