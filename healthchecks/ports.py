"""Which ports of a container become services: the engine's, plus those declared with ``SERVICE_PORTS``.

Pure. Podman drops ``--expose`` for containers on the host network, so such a container reports no port
at all; ``SERVICE_PORTS`` declares it on every engine. See docs/labels.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .engine import ContainerInfo, PortBinding

if TYPE_CHECKING:
    from .labels import HostSettings

__all__ = ["all_ports", "no_port_reason", "ports_to_register"]


def _declared(text: str, where: str, warnings: list[str]) -> list[PortBinding]:
    """``SERVICE_PORTS=8080,5353/udp``: ports the container serves on, beyond those the engine reports."""
    ports = []
    for raw in text.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        number, _, proto = item.partition("/")
        if number.isdigit() and 0 < int(number) < 65536 and proto in ("", "tcp", "udp"):
            ports.append(PortBinding(int(number), proto or "tcp"))
        else:
            warnings.append(f"{where}: SERVICE_PORTS item {item[:40]!r} is not PORT or PORT/udp; skipped")
    return ports


def all_ports(
    container: ContainerInfo, keys: dict[str, str], where: str, warnings: list[str]
) -> list[PortBinding]:
    """The engine's ports plus declared ones (the engine's binding wins for the same port)."""
    known = {(b.port, b.protocol): b for b in container.ports}
    for binding in _declared(keys.get("ports", ""), where, warnings):
        known.setdefault((binding.port, binding.protocol), binding)
    return sorted(known.values())


def no_port_reason(container: ContainerInfo, host: HostSettings) -> str:
    """Why a container that asks for a service yields no port, and what to do about it."""
    if container.network_mode == "host":
        return (
            "it is on the host network and declares no port (Podman drops --expose there); "
            "declare it with the label SERVICE_PORTS=PORT"
        )
    if not container.ports:
        return "it exposes no port; publish one with -p 127.0.0.1:HOSTPORT:PORT"
    if host.internal:
        return "it has no IP address of its own on its network"
    return "none of its exposed ports is published; publish one with -p 127.0.0.1:HOSTPORT:PORT"


def ports_to_register(
    container: ContainerInfo, host: HostSettings, bindings: list[PortBinding]
) -> list[tuple[PortBinding, str, int]]:
    """(binding, address, port) for each port to register."""
    chosen = []
    host_network = container.network_mode == "host"
    for binding in bindings:
        if host_network:
            chosen.append((binding, host.advertise_address, binding.port))
        elif host.internal:
            if container.ip:
                chosen.append((binding, container.ip, binding.port))
        elif binding.host_port:
            chosen.append((binding, host.advertise_address, binding.host_port))
    return chosen
