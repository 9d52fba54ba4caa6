"""Many services read at once: one read per node instead of one per service.

When many watched services of a datacenter are dirty at once (the first render, the catalog fallback,
the periodic resync), reading ``/v1/catalog/node/NAME`` for every node plus the non-passing checks
(``/v1/health/state/any?filter=Status != "passing"``) gives every instance and its worst status in a
few requests: at 5,000 services on 4 nodes, 6 requests instead of 5,000. Each instance is read as
``/v1/health/service/NAME`` would show it (its node, the service, the node's and the service's checks;
a check missing from the filtered answer is passing), then parsed by the same ``parse_health``.

It is used only where it is cheaper: at least ``BULK_MIN`` dirty services and at most one node per
``SERVICES_PER_NODE`` of them. Services read with ``near`` (Consul sorts those) and names Consul cannot
serve by path are always fetched one by one. The reads are not one consistent snapshot; a change made
while they run moves the signal queries' indexes after the ones they last saw, so the services it
touches are marked dirty and fetched again: the usual level-triggered healing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from plumbing.errors import ConsulError

from .blocking import as_index
from .catalog import parse_health
from .client import consul_errors, unservable
from .decoding import DROP, Hook, Path
from .model import Instance, ServiceQuery
from .problems import NOT_PASSING, parse_problems

if TYPE_CHECKING:
    from .watch import Watcher

__all__ = ["BULK_MIN", "SERVICES_PER_NODE", "bulk_candidates", "read_bulk"]

log = logging.getLogger(__name__)
BULK_MIN = 64
SERVICES_PER_NODE = 8
SERVICE_FIELDS = ("ID", "Service", "Address", "Port", "Tags", "Meta", "Weights")  # what parse_health reads
# Node answers in flight (3 MB each at 5,000 services): Consul builds two at once on two cores, so the
# first render took 2.5 s instead of 3.0-3.2 (bench.watch_scale, alone on the machine), for ~5 MB more.
NODE_READS = 2


def bulk_candidates(batch: Sequence[ServiceQuery]) -> list[ServiceQuery]:
    """The services of a batch a bulk read may answer."""
    return [q for q in batch if not q.near and unservable(q.name) is None]


async def read_bulk(
    watcher: Watcher, dc: str, queries: Sequence[ServiceQuery], limit: asyncio.Semaphore
) -> tuple[dict[str, list[Instance]], int] | None:
    """Instances by lower-cased service name for these queries and the highest index of the reads,
    or None where one by one is better."""
    client, where = watcher.client, dc or None
    try:
        async with limit, consul_errors("the list of nodes"):
            _, listed = await client.catalog.nodes(dc=where)
        raw = [n.get("Node") for n in listed or [] if isinstance(n, Mapping)]
        names = [n for n in raw if isinstance(n, str) and unservable(n) is None]
        if len(names) < len(raw) or len(names) * SERVICES_PER_NODE > len(queries):
            return None  # a node read by path would read another one; or one by one is cheaper
        async with limit, consul_errors("the health of every check that is not passing"):
            at, checks = await client.health_state(filter=NOT_PASSING, dc=where)
        indexes = [as_index(at)]
        statuses = parse_problems(checks).statuses()
        found: dict[str, list[Instance]] = {q.name.lower(): [] for q in queries}
        slim = _slim(frozenset(found))
        reads = asyncio.Semaphore(NODE_READS)

        async def read(node: str) -> None:
            async with reads, limit, consul_errors(f"the node '{node}'"):
                at, data = await client.catalog_node(node, dc=where, item=slim)
            indexes.append(as_index(at))
            for instance in parse_health(_entries(data, found, statuses), dc, keep_order=True):
                found[instance.name.lower()].append(instance)

        # Every read ends before deciding, so none still runs (holding a connection) once we return.
        for outcome in await asyncio.gather(*(read(n) for n in names), return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
    except ConsulError as exc:
        log.debug("Reading %d services per node failed (%s); reading them one by one.", len(queries), exc)
        return None
    return found, max(indexes)


def _slim(wanted: frozenset[str]) -> Hook:
    """Keep of a node's services only the wanted ones, and of each only what parse_health reads.

    Called in the decoding thread for each service as it is decoded: the rest of the answer (other
    services, proxy and connect settings) never exists whole in memory.
    """

    def item(path: Path, value: Any) -> Any:
        if path[0] != "Services":
            return value
        if (
            isinstance(value, Mapping)
            and isinstance(value.get("Service"), str)
            and value["Service"].lower() in wanted
        ):
            return {key: value[key] for key in SERVICE_FIELDS if key in value}
        return DROP

    return item


def _entries(
    data: Any,
    wanted: Mapping[str, Any],
    statuses: tuple[dict[tuple[str, str], list[str]], dict[str, list[str]]],
) -> list[dict[str, Any]]:
    """A node's wanted services as /v1/health/service entries (node, service, the checks' statuses)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("Node"), Mapping):
        return []
    node, raw = data["Node"], data.get("Services") or {}
    services = raw.values() if isinstance(raw, Mapping) else raw if isinstance(raw, list) else []
    by_instance, by_node = statuses
    name = node.get("Node")
    out = []
    for svc in services:
        if (
            isinstance(svc, Mapping)
            and isinstance(svc.get("Service"), str)
            and svc["Service"].lower() in wanted
        ):
            found = by_node.get(name, []) + by_instance.get((name, svc.get("ID")), [])  # type: ignore[arg-type]
            out.append({"Node": node, "Service": svc, "Checks": [{"Status": s} for s in found]})
    return out
