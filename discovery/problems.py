"""The non-passing checks of a datacenter: what the health signal carries, and what changed between two.

The health signal asks ``/v1/health/state/critical`` and ``/v1/health/state/warning``: every check that
is not passing, usually a handful, where ``state/any`` carries every check of the datacenter. Their
union (``Problems.union``) is the complete non-passing state, so comparing it with the last one is level-triggered: a
check that went critical, recovered, appeared or vanished while critical changes its service's set,
whichever wake-up it is seen in. Node checks (no service: serfHealth, node maintenance) are kept by node.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NOT_PASSING", "Problems", "parse_problems"]

NOT_PASSING = 'Status != "passing"'
Check = tuple[str, str, str, str, int]  # node, check ID, service ID, status, modify index


@dataclass(frozen=True, slots=True)
class Problems:
    """Non-passing checks grouped by service name, and node checks grouped by node."""

    services: Mapping[str, frozenset[Check]] = field(default_factory=dict)
    nodes: Mapping[str, frozenset[Check]] = field(default_factory=dict)

    @staticmethod
    def union(parts: Iterable[Problems]) -> Problems:
        """The checks of every part (the critical and the warning answers), grouped as one answer."""
        services: dict[str, frozenset[Check]] = {}
        nodes: dict[str, frozenset[Check]] = {}
        for part in parts:
            for name, checks in part.services.items():
                services[name] = services.get(name, frozenset()) | checks
            for node, checks in part.nodes.items():
                nodes[node] = nodes.get(node, frozenset()) | checks
        return Problems(services, nodes)

    def changed(self, old: Problems) -> tuple[set[str], set[str]]:
        """(services, nodes) whose non-passing checks differ from ``old``'s, either way."""
        services = {
            s
            for s in old.services.keys() | self.services.keys()
            if old.services.get(s) != self.services.get(s)
        }
        nodes = {n for n in old.nodes.keys() | self.nodes.keys() if old.nodes.get(n) != self.nodes.get(n)}
        return services, nodes

    def statuses(self) -> tuple[dict[tuple[str, str], list[str]], dict[str, list[str]]]:
        """Statuses by (node, service ID) and node checks' statuses by node: the bulk read's checks."""
        by_instance: dict[tuple[str, str], list[str]] = {}
        for checks in self.services.values():
            for node, _, sid, status, _ in checks:
                by_instance.setdefault((node, sid), []).append(status)
        by_node = {node: [c[3] for c in checks] for node, checks in self.nodes.items()}
        return by_instance, by_node


def parse_problems(checks: Any) -> Problems:
    """Group a filtered /v1/health/state/any answer by service (and node, for node checks)."""
    services: dict[str, set[Check]] = {}
    nodes: dict[str, set[Check]] = {}
    for c in checks if isinstance(checks, list) else ():
        if not isinstance(c, Mapping):
            continue
        node = sys.intern(str(c.get("Node", "")))
        item = (
            node,
            str(c.get("CheckID", "")),
            str(c.get("ServiceID", "")),
            str(c.get("Status", "")),
            _int(c),
        )
        service = c.get("ServiceName") or ""
        if service:
            services.setdefault(str(service), set()).add(item)
        else:
            nodes.setdefault(node, set()).add(item)  # a node check: every instance on that node
    return Problems(
        {k: frozenset(v) for k, v in services.items()}, {k: frozenset(v) for k, v in nodes.items()}
    )


def _int(check: Mapping[str, Any]) -> int:
    value = check.get("ModifyIndex", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
