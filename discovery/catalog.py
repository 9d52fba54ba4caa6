"""Consul JSON -> validated domain values. Everything from Consul is untrusted.

An instance whose address is not an IP literal or a valid host name, or whose port is not 1-65535, is
dropped with a warning that names it. Strings are kept as they are (the renderer escapes them).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Iterable, Mapping
from sys import intern
from typing import Any

from .model import STATUS_ORDER, Instance, ServiceSummary, Status

__all__ = ["parse_health", "parse_services", "valid_address", "weight_of", "worst_status"]

log = logging.getLogger(__name__)

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
MAX_STRING = 4096
DEFAULT_WEIGHTS = (1, 1)


def valid_address(address: str) -> bool:
    """True for an IPv4/IPv6 literal or an RFC 1123 host name."""
    if not isinstance(address, str) or not address or len(address) > 253:
        return False
    return _valid_text_address(address)


@functools.lru_cache(maxsize=4096)  # thousands of instances share a few node addresses
def _valid_text_address(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
        return True
    except ValueError:
        pass
    host = address[:-1] if address.endswith(".") else address
    return all(_HOST_LABEL.match(label) for label in host.split("."))


def worst_status(statuses: Iterable[str]) -> Status:
    """The worst of some check statuses; an unknown status counts as critical, no checks as passing."""
    worst: Status = "passing"
    for status in statuses:
        rank = STATUS_ORDER.get(status, 2)
        if rank > STATUS_ORDER[worst]:
            worst = "warning" if rank == 1 else "critical"
    return worst


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) <= MAX_STRING else None


def _weights(weights: Any) -> tuple[int, int]:
    """(passing, warning) weights of a registration."""
    if not isinstance(weights, Mapping):
        return DEFAULT_WEIGHTS
    return _pair(_clamped(weights.get("Passing", 1)), _clamped(weights.get("Warning", 1)))


def _clamped(value: Any) -> int:
    # Consul allows any positive int; nginx wants >= 1. Absurd values are clamped, not trusted.
    return min(max(value, 1), 1000) if isinstance(value, int) and not isinstance(value, bool) else 1


@functools.lru_cache(maxsize=1024)  # one tuple per pair in use, shared by every instance with it
def _pair(passing: int, warning: int) -> tuple[int, int]:
    return (passing, warning)


def weight_of(weights: tuple[int, int], status: Status) -> int:
    """The weight an instance with these (passing, warning) weights has in ``status``."""
    return weights[1] if status == "warning" else weights[0]


def _instance(entry: Mapping[str, Any], dc: str) -> Instance | None:
    node = entry.get("Node") or {}
    svc = entry.get("Service") or {}
    checks = entry.get("Checks") or []
    name, sid, node_name = _text(svc.get("Service")), _text(svc.get("ID")), _text(node.get("Node"))
    if name is None or sid is None or node_name is None:
        log.warning("Dropped %s: its name, ID or node is missing or not text.", _where(svc))
        return None
    address = svc.get("Address") or node.get("Address") or ""
    if not valid_address(address):
        log.warning(
            "Dropped %s: address %r is not an IP address or host name.", _where(svc), str(address)[:80]
        )
        return None
    port = svc.get("Port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        log.warning("Dropped %s: port %r is not between 1 and 65535.", _where(svc), port)
        return None
    status = worst_status(c.get("Status", "critical") for c in checks if isinstance(c, Mapping))
    weights = _weights(svc.get("Weights"))
    # Interned: thousands of instances share their node's name and address, their tags and datacenter.
    return Instance(
        node=intern(node_name),
        id=sid,
        name=intern(name),
        address=intern(address),
        port=port,
        tags=tuple(intern(t) for t in (svc.get("Tags") or []) if _text(t) is not None),
        meta=_meta(svc.get("Meta")),
        weight=weight_of(weights, status),
        status=status,
        datacenter=intern(_text(node.get("Datacenter")) or dc),
        node_address=intern(_text(node.get("Address")) or ""),
        node_meta=_meta(node.get("Meta")),
        weights=weights,
    )


def _where(svc: Mapping[str, Any]) -> str:
    return f"instance {svc.get('ID')!r} of service {svc.get('Service')!r}"


def _meta(raw: Any) -> tuple[tuple[str, str], ...]:
    """Service or node meta: text keys and values only, sorted."""
    if not isinstance(raw, Mapping):
        return ()
    return tuple(sorted((k, v) for k, v in raw.items() if _text(k) is not None and _text(v) is not None))


def parse_health(entries: Any, dc: str = "", keep_order: bool = False) -> tuple[Instance, ...]:
    """Turn a /v1/health/service answer into instances sorted by node and ID (or kept in order for near=)."""
    if not isinstance(entries, list):
        return ()
    instances = [i for i in (_instance(e, dc) for e in entries if isinstance(e, Mapping)) if i is not None]
    return tuple(instances) if keep_order else tuple(sorted(instances))


def parse_services(data: Any) -> tuple[ServiceSummary, ...]:
    """Turn a /v1/catalog/services answer (name -> tags) into sorted summaries."""
    if not isinstance(data, Mapping):
        return ()
    out = []
    for name, tags in data.items():
        if _text(name) is None:
            continue
        clean = sorted({t for t in (tags or []) if _text(t) is not None})
        out.append(ServiceSummary(name=name, tags=tuple(clean)))
    return tuple(sorted(out))
