"""The container engine at the edge: running containers and their events as neutral, frozen values.

The Docker Engine API is spoken through the ``docker`` SDK, which is synchronous: every call runs in a
thread (``asyncio.to_thread``) and the event stream is read by a thread that feeds the event loop. Podman's
Docker-compatible socket serves the same API. Nothing here decides anything: ``container_from_inspect``
translates, ``DockerEngine`` moves bytes, and SDK errors become ``EngineError`` naming the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import docker
import docker.errors
import requests.exceptions

from .engine_socket import socket_problem
from .errors import EngineError, first_line
from .exec_monitors import ExecMonitors

__all__ = [
    "CONNECTED",
    "ContainerEvent",
    "ContainerInfo",
    "DockerEngine",
    "Engine",
    "ExecResult",
    "PortBinding",
    "container_from_inspect",
    "engine_errors",
    "is_relevant",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Not the engine's: yielded once the event stream is open (events may have been missed before it).
CONNECTED = "connected"

# Actions after which the set of running containers (or their health) may have changed.
RELEVANT_ACTIONS = frozenset(
    {"start", "restart", "die", "stop", "kill", "destroy", "remove", "pause", "unpause", "oom", "died"}
)


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


def container_from_inspect(attrs: Mapping[str, Any]) -> ContainerInfo:
    """Translate one ``GET /containers/ID/json`` answer (Docker or Podman) into a ContainerInfo."""
    config = attrs.get("Config") or {}
    host_config = attrs.get("HostConfig") or {}
    network = attrs.get("NetworkSettings") or {}
    state = attrs.get("State") or {}
    labels = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, sep, value = str(item).partition("=")
        if sep:
            env[key] = value
    ports: dict[tuple[int, str], PortBinding] = {}
    for spec in config.get("ExposedPorts") or {}:
        port, proto = _split_port(spec)
        if port is not None:
            ports[(port, proto)] = PortBinding(port, proto)
    for spec, bindings in (network.get("Ports") or {}).items():
        port, proto = _split_port(spec)
        if port is None:
            continue
        chosen = _first_binding(bindings or [])
        if chosen is None:
            ports.setdefault((port, proto), PortBinding(port, proto))
        else:
            ports[(port, proto)] = PortBinding(port, proto, chosen[0], chosen[1])
    health = state.get("Health") or state.get("Healthcheck") or {}
    health_status = health.get("Status") or None
    log_entries = health.get("Log") or []
    health_output = str(log_entries[-1].get("Output") or "") if log_entries else ""
    return ContainerInfo(
        id=str(attrs.get("Id") or ""),
        name=str(attrs.get("Name") or "").lstrip("/"),
        image=str(config.get("Image") or attrs.get("ImageName") or attrs.get("Image") or ""),
        hostname=str(config.get("Hostname") or ""),
        labels=tuple(sorted(labels.items())),
        env=tuple(sorted(env.items())),
        ports=tuple(sorted(ports.values())),
        ip=_container_ip(network),
        network_mode=str(host_config.get("NetworkMode") or ""),
        health=str(health_status) if health_status else None,
        health_output=health_output,
    )


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


class DockerEngine:
    """The Docker Engine API (Docker or Podman socket) through the synchronous SDK, run in threads."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url
        self._timeout = timeout
        self._client: docker.APIClient | None = None
        self._lock = threading.Lock()
        self._streams: set[Any] = set()
        self._inspected: dict[str, ContainerInfo] = {}
        self._monitors = ExecMonitors()

    def _api(self) -> docker.APIClient:
        with self._lock:
            if self._client is None:
                # version="auto" asks the engine once; a fixed version avoids one round trip per connect.
                self._client = docker.APIClient(base_url=self.url, version="1.40", timeout=int(self._timeout))
            return self._client

    async def _call(self, what: str, fn: Callable[[docker.APIClient], T]) -> T:
        def run() -> T:
            with engine_errors(self.url, what):
                return fn(self._api())

        return await asyncio.to_thread(run)

    async def running(self, refresh: bool = False) -> tuple[ContainerInfo, ...]:
        """Return every running container, sorted by name (paused ones are not running).

        A container's inspect answer is kept while it runs: the fields used here are fixed at its start,
        and inspecting a container that is being killed blocks until the engine is done with it (about
        half a second on Docker), which would delay every deregistration. ``refresh`` inspects all again.
        """

        def collect(api: docker.APIClient) -> tuple[ContainerInfo, ...]:
            if refresh:
                self._inspected.clear()
            found = []
            listed = api.containers(filters={"status": "running"})
            for summary in listed:
                cid = str(summary["Id"])
                info = self._inspected.get(cid)
                if info is None:
                    try:
                        info = container_from_inspect(api.inspect_container(cid))
                    except docker.errors.NotFound:
                        continue  # gone between list and inspect: the next event reconciles again
                    self._inspected[cid] = info
                found.append(info)
            for gone in set(self._inspected) - {str(s["Id"]) for s in listed}:
                del self._inspected[gone]
            return tuple(sorted(found, key=lambda c: (c.name, c.id)))

        return await self._call("list running containers", collect)

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        """Return one container as it is now, or None when it is gone."""

        def one(api: docker.APIClient) -> ContainerInfo | None:
            try:
                return container_from_inspect(api.inspect_container(container_id))
            except docker.errors.NotFound:
                return None

        return await self._call(f"inspect container {container_id[:12]}", one)

    async def events(self) -> AsyncIterator[ContainerEvent]:
        """Yield container events; raise EngineError when the stream breaks or cannot open."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ContainerEvent | BaseException | None] = asyncio.Queue()
        stream = await self._call(
            "open the event stream",
            lambda api: api.events(decode=True, filters={"type": "container"}),
        )
        self._streams.add(stream)

        def pump() -> None:
            item: BaseException | None = None
            try:
                for raw in stream:
                    event = _event_from_raw(raw)
                    if event is not None:
                        loop.call_soon_threadsafe(queue.put_nowait, event)
            except Exception as exc:  # the stream broke; the consumer raises EngineError
                item = exc
            with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
                loop.call_soon_threadsafe(queue.put_nowait, item)

        thread = threading.Thread(target=pump, name="engine-events", daemon=True)
        thread.start()
        try:
            yield ContainerEvent(action=CONNECTED, container_id="")
            while True:
                got = await queue.get()
                if isinstance(got, ContainerEvent):
                    yield got
                elif got is None:
                    raise EngineError(f"The event stream of the container engine at {self.url} ended.")
                else:
                    raise EngineError(
                        f"The event stream of the container engine at {self.url} broke: {first_line(got)}."
                    ) from got
        finally:
            # Closing the response wakes the reading thread at once, so stopping is prompt.
            self._streams.discard(stream)
            with contextlib.suppress(Exception):
                stream.close()

    async def exec(self, container_id: str, argv: tuple[str, ...], timeout: float, limit: int) -> ExecResult:
        """Run argv in the container (no shell); kill it at the timeout; keep ``limit`` bytes of output."""
        what = f"run a check in container {container_id[:12]}"
        floor = await self._monitors.before(self._is_podman)
        created = await self._call(
            what, lambda api: api.exec_create(container_id, list(argv), stdout=True, stderr=True)
        )
        exec_id = str(created["Id"])
        buffer = bytearray()

        def read() -> None:
            with engine_errors(self.url, what):
                stream = self._api().exec_start(exec_id, stream=True)
                try:
                    for chunk in stream:
                        if len(buffer) < limit:  # drain the rest so the command never blocks on a pipe
                            buffer.extend(chunk[: limit - len(buffer)])
                finally:
                    # The SDK leaves closing a streamed response to its caller, and its close() shuts the
                    # socket but leaves the response's file open on it: close both, or the fd lingers.
                    stream.close()
                    getattr(stream, "_response").close()  # noqa: B009 - private, untyped in the stubs

        reader = asyncio.ensure_future(asyncio.to_thread(read))
        timed_out = False
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that arrives
            # just as the reader finishes, and the check's runner would then never stop.
            async with asyncio.timeout(timeout):
                await asyncio.shield(reader)
        except TimeoutError:
            timed_out = True
            await self._kill_exec(exec_id)
            with contextlib.suppress(TimeoutError, EngineError):
                async with asyncio.timeout(2.0):
                    await asyncio.shield(reader)
        except asyncio.CancelledError:
            await asyncio.shield(self._kill_exec(exec_id))
            raise
        code = await self._exit_code(exec_id, what)
        await self._monitors.after(exec_id, floor)
        text = bytes(buffer).decode("utf-8", errors="replace")
        if timed_out:
            return ExecResult(exit_code=code if code >= 0 else 137, output=text, timed_out=True)
        return ExecResult(exit_code=code, output=text)

    async def _is_podman(self) -> bool:
        version = await self._call("ask the engine's version", lambda api: api.version())
        return any("podman" in str(c.get("Name", "")).lower() for c in version.get("Components") or [])

    async def _kill_exec(self, exec_id: str) -> None:
        """Kill a command that outlived its timeout (the engine API has no call for it: use its host PID)."""
        try:
            info = await self._call("inspect a check", lambda api: api.exec_inspect(exec_id))
        except EngineError:
            return
        pid = int(info.get("Pid") or 0)
        if pid <= 0 or not info.get("Running"):
            return
        for victim in [pid, *_descendants(pid)]:  # a shell's children would keep the output pipe open
            try:
                os.kill(victim, signal.SIGKILL)
            except OSError as exc:
                if exc.errno != errno.ESRCH:
                    log.warning("Cannot kill the timed-out check process %d: %s.", victim, exc.strerror)

    async def _exit_code(self, exec_id: str, what: str) -> int:
        deadline = time.monotonic() + 2.0
        while True:
            info = await self._call(what, lambda api: api.exec_inspect(exec_id))
            if not info.get("Running") or time.monotonic() > deadline:
                code = info.get("ExitCode")
                return int(code) if code is not None else -1
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Close the event streams and the connection pool."""
        for stream in list(self._streams):
            with contextlib.suppress(Exception):
                stream.close()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _descendants(pid: int) -> list[int]:
    """Every descendant of a host process, from /proc (empty where /proc is not readable)."""
    found: list[int] = []
    pending = [pid]
    while pending and len(found) < 10_000:
        current = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    children = [int(c) for c in handle.read().split()]
            except (OSError, ValueError):
                continue
            found.extend(children)
            pending.extend(children)
    return found


def _event_from_raw(raw: Mapping[str, Any]) -> ContainerEvent | None:
    if raw.get("Type") != "container":
        return None
    action = str(raw.get("Action") or "")
    actor = raw.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    # "health_status: healthy", "exec_start: sh -c ..." carry details after a colon.
    return ContainerEvent(
        action=action, container_id=str(actor.get("ID") or ""), name=str(attributes.get("name", ""))
    )


def is_relevant(event: ContainerEvent) -> bool:
    """True for events after which the registrations may have to change."""
    base = event.action.split(":", 1)[0].strip()
    return base in RELEVANT_ACTIONS or base in ("health_status", CONNECTED)


@contextlib.contextmanager
def engine_errors(url: str, what: str) -> Iterator[None]:
    """Translate SDK and connection errors into an EngineError naming the call."""
    try:
        yield
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        # A socket that is not there (the engine's API service not started) is the usual first-day
        # problem; the SDK reports it as nested tuples, so say it in one sentence naming the socket.
        missing = socket_problem(url)
        if missing is not None:
            raise EngineError(missing) from exc
        raise EngineError(f"The container engine at {url} could not {what}: {first_line(exc)}.") from exc
