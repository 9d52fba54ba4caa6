"""The engine edge's neutral, frozen values, and the seam (a Protocol) a container engine offers the companion."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

__all__ = ["CONNECTED", "ContainerEvent", "ContainerInfo", "Engine", "ExecResult", "PortBinding"]

# Not the engine's: yielded once the event stream is open (events may have been missed before it).
CONNECTED = "connected"


@dataclass(frozen=True, order=True)
class PortBinding:
    """One exposed container port and, when published, where the host publishes it."""

    port: int
    protocol: str  # "tcp" or "udp"
    host_ip: str = ""
    host_port: int | None = None


@dataclass(frozen=True, kw_only=True)
class ContainerInfo:
    """What the companion needs to know about one running container (sorted tuples: comparable)."""

    id: str
    name: str
    image: str
    hostname: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    ports: tuple[PortBinding, ...] = ()
    ip: str = ""
    network_mode: str = ""
    health: str | None = None  # "starting", "healthy", "unhealthy"; None without a HEALTHCHECK
    health_output: str = ""

    @property
    def short_id(self) -> str:
        """The first 12 hex digits of the ID, as engines print it."""
        return self.id[:12]


@dataclass(frozen=True)
class ContainerEvent:
    """One engine event about a container (``Type``/``Action``/``Actor`` fields only)."""

    action: str
    container_id: str
    name: str = ""


@dataclass(frozen=True)
class ExecResult:
    """The outcome of a command run inside a container."""

    exit_code: int
    output: str
    timed_out: bool = False


class Engine(Protocol):
    """The seam between the companion and a container engine."""

    async def running(self, refresh: bool = False) -> tuple[ContainerInfo, ...]:
        """Return every running container, sorted by name; ``refresh`` inspects each one again."""
        ...

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        """Return one container as it is now, or None when it is gone."""
        ...

    def events(self) -> AsyncIterator[ContainerEvent]:
        """Yield container events until the stream breaks (then raise EngineError)."""
        ...

    async def exec(self, container_id: str, argv: tuple[str, ...], timeout: float, limit: int) -> ExecResult:
        """Run argv inside a container, killing it at the timeout; keep at most ``limit`` bytes of output."""
        ...

    async def close(self) -> None:
        """Release connections and stop the event stream."""
        ...
