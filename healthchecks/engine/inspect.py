"""Pure translation of the engine's JSON (inspect answers, raw events) into the edge's neutral values.

Docker and Podman answer ``GET /containers/ID/json`` with the same fields in slightly different places
(Podman's ``ImageName``, ``Healthcheck``); both shapes are read here and nothing else is decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .values import ContainerEvent, ContainerInfo, PortBinding

__all__ = ["container_from_inspect", "event_from_raw"]


def container_from_inspect(attrs: Mapping[str, Any]) -> ContainerInfo:
    """Translate one ``GET /containers/ID/json`` answer (Docker or Podman) into a ContainerInfo."""
    config = attrs.get("Config") or {}
    host_config = attrs.get("HostConfig") or {}
    network = attrs.get("NetworkSettings") or {}
    health = (attrs.get("State") or {}).get("Health") or (attrs.get("State") or {}).get("Healthcheck") or {}
    health_status = health.get("Status") or None
    log_entries = health.get("Log") or []
    labels = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
    return ContainerInfo(
        id=str(attrs.get("Id") or ""),
        name=str(attrs.get("Name") or "").lstrip("/"),
        image=str(config.get("Image") or attrs.get("ImageName") or attrs.get("Image") or ""),
        hostname=str(config.get("Hostname") or ""),
        labels=tuple(sorted(labels.items())),
        env=tuple(sorted(_env(config.get("Env") or []).items())),
        ports=_ports(config.get("ExposedPorts") or {}, network.get("Ports") or {}),
        ip=_container_ip(network),
        network_mode=str(host_config.get("NetworkMode") or ""),
        health=str(health_status) if health_status else None,
        health_output=str(log_entries[-1].get("Output") or "") if log_entries else "",
    )


def _env(items: list[Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if sep:  # an entry without "=" passes the variable through from the engine's side: no value here
            env[key] = value
    return env


def _ports(exposed: Mapping[str, Any], published: Mapping[str, Any]) -> tuple[PortBinding, ...]:
    """Exposed ports, each with the host address it is published on (when it is)."""
    ports: dict[tuple[int, str], PortBinding] = {}
    for spec in exposed:
        port, proto = _split_port(spec)
        if port is not None:
            ports[(port, proto)] = PortBinding(port, proto)
    for spec, bindings in published.items():
        port, proto = _split_port(spec)
        if port is None:
            continue
        chosen = _first_binding(bindings or [])
        if chosen is None:
            ports.setdefault((port, proto), PortBinding(port, proto))
        else:
            ports[(port, proto)] = PortBinding(port, proto, chosen[0], chosen[1])
    return tuple(sorted(ports.values()))


def _split_port(spec: str) -> tuple[int | None, str]:
    number, _, proto = str(spec).partition("/")
    try:
        port = int(number)
    except ValueError:
        return None, ""
    if not 0 < port < 65536:
        return None, ""
    return port, (proto or "tcp").lower()


def _first_binding(bindings: list[Mapping[str, Any]]) -> tuple[str, int] | None:
    """Prefer an IPv4 binding; Docker lists one per address family."""
    found: list[tuple[str, int]] = []
    for binding in bindings:
        try:
            host_port = int(binding.get("HostPort") or 0)
        except ValueError:
            continue
        if host_port:
            found.append((str(binding.get("HostIp") or ""), host_port))
    if not found:
        return None
    return sorted(found, key=lambda b: (":" in b[0], b))[0]


def _container_ip(network: Mapping[str, Any]) -> str:
    if network.get("IPAddress"):
        return str(network["IPAddress"])
    for name in sorted(network.get("Networks") or {}):
        address = (network["Networks"][name] or {}).get("IPAddress")
        if address:
            return str(address)
    return ""


def event_from_raw(raw: Mapping[str, Any]) -> ContainerEvent | None:
    """One decoded event of the engine's stream as a ContainerEvent; None for other types."""
    if raw.get("Type") != "container":
        return None
    action = str(raw.get("Action") or "")
    actor = raw.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    # "health_status: healthy", "exec_start: sh -c ..." carry details after a colon.
    return ContainerEvent(
        action=action, container_id=str(actor.get("ID") or ""), name=str(attributes.get("name", ""))
    )
