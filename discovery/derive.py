"""A health flip's new statuses, derived from the health signal's answers instead of read again.

The two status queries (``discovery.problems``) carry every check that is not passing. When both
answered at the same index, their union is the datacenter's whole non-passing state at that index,
so an instance's status there is the worst of its checks in the union (a check not in it is passing),
exactly what ``/v1/health/service`` would say. A flip then costs no read at all: at 5,000 services
the read was a Consul round trip per flip and per sidecar.

What the answers cannot tell is which instances exist: a (de)registration is the catalog query's to
see, and a derivation only ever changes statuses. So it gives up (``None``: read the service again)
wherever the answers could hide one:

* an instance would get better with no non-passing check of its own left in the answers: it
  recovered, or it was deregistered while failing (the two look the same here, and routing to a
  deregistered instance is what must never happen). A flip to warning or critical, and a check
  moving between the two, are derived; a recovery is read.
* a non-passing check belongs to an instance that was not read (registered failing, or not yet read).

A worse status needs no such proof: an instance taken out of rotation that no longer exists is
harmless until the catalog's change removes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from .catalog import weight_of, worst_status
from .model import STATUS_ORDER, Instance, Status
from .problems import Problems

__all__ = ["Lowered", "derive", "lowered"]

Lowered = Mapping[str, list[str]]  # the names of a Problems' services by lower-cased name


def lowered(problems: Problems) -> dict[str, list[str]]:
    """Its service names by lower-cased name (Consul matches service names without case)."""
    out: dict[str, list[str]] = {}
    for name in problems.services:
        out.setdefault(name.lower(), []).append(name)
    return out


def derive(
    instances: tuple[Instance, ...], name: str, after: Problems, names: Lowered
) -> tuple[Instance, ...] | None:
    """``instances`` (service ``name`` as last read) with the statuses ``after`` gives them, or None
    where only a read can tell (see the module's docstring)."""
    statuses: dict[tuple[str, str], list[str]] = {}
    for node, _, sid, status, _ in (
        c for exact in names.get(name.lower(), ()) for c in after.services[exact]
    ):
        statuses.setdefault((node, sid), []).append(status)
    if not statuses.keys() <= {(i.node, i.id) for i in instances}:
        return None  # an instance that was not read: registered failing, or read before it was
    out = []
    for i in instances:
        own = statuses.get((i.node, i.id))
        status = worst_status([c[3] for c in after.nodes.get(i.node, ())] + (own or []))
        if STATUS_ORDER[status] < STATUS_ORDER[i.status] and own is None:
            return None  # better, with no check of its own to prove it exists: recovered, or deregistered
        out.append(i if status == i.status else _with_status(i, status))
    return tuple(out)


def _with_status(instance: Instance, status: Status) -> Instance:
    return dataclasses.replace(instance, status=status, weight=weight_of(instance.weights, status))
