"""The container engine at the edge: the Docker Engine API (Docker or Podman socket) through the SDK.

The ``docker`` SDK is synchronous: every call runs in a thread (``asyncio.to_thread``) and the event
stream is read by a thread that feeds the event loop (``bridge``). Podman's Docker-compatible socket
serves the same API. Nothing here decides anything: ``inspect`` translates, ``DockerEngine`` moves bytes,
and SDK errors become ``EngineError`` naming the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from plumbing.errors import EngineError, first_line

from .bridge import ThreadFailed, read_in_thread
from .exec_monitors import ExecMonitors
from .inspect import container_from_inspect, event_from_raw
from .proctree import kill_tree
from .unix_socket import socket_problem
from .values import CONNECTED, ContainerEvent, ContainerInfo, ExecResult

__all__ = ["DockerEngine", "engine_errors"]

T = TypeVar("T")
KILL_GRACE = 2.0  # seconds to wait for a killed check's output to end and its exit code to settle


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
            listed = [str(s["Id"]) for s in api.containers(filters={"status": "running"})]
            found = [info for cid in listed if (info := self._cached_inspect(api, cid)) is not None]
            for gone in set(self._inspected) - set(listed):
                del self._inspected[gone]
            return tuple(sorted(found, key=lambda c: (c.name, c.id)))

        return await self._call("list running containers", collect)

    def _cached_inspect(self, api: docker.APIClient, cid: str) -> ContainerInfo | None:
        info = self._inspected.get(cid)
        if info is None:
            try:
                info = container_from_inspect(api.inspect_container(cid))
            except docker.errors.NotFound:
                return None  # gone between list and inspect: the next event reconciles again
            self._inspected[cid] = info
        return info

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
        stream = await self._call(
            "open the event stream",
            lambda api: api.events(decode=True, filters={"type": "container"}),
        )
        self._streams.add(stream)
        try:
            yield ContainerEvent(action=CONNECTED, container_id="")
            async with contextlib.aclosing(read_in_thread(stream, "engine-events")) as raws:
                async for raw in raws:
                    event = event_from_raw(raw)
                    if event is not None:
                        yield event
        except ThreadFailed as exc:
            cause = exc.__cause__ or exc
            raise EngineError(
                f"The event stream of the container engine at {self.url} broke: {first_line(cause)}."
            ) from cause
        finally:
            # Closing the response wakes the reading thread at once, so stopping is prompt.
            self._streams.discard(stream)
            with contextlib.suppress(Exception):
                stream.close()
        raise EngineError(f"The event stream of the container engine at {self.url} ended.")

    async def exec(self, container_id: str, argv: tuple[str, ...], timeout: float, limit: int) -> ExecResult:
        """Run argv in the container (no shell); kill it at the timeout; keep ``limit`` bytes of output."""
        what = f"run a check in container {container_id[:12]}"
        floor = await self._monitors.before(self._is_podman)
        created = await self._call(
            what, lambda api: api.exec_create(container_id, list(argv), stdout=True, stderr=True)
        )
        exec_id = str(created["Id"])
        buffer = bytearray()
        reader = asyncio.ensure_future(asyncio.to_thread(self._read_exec, exec_id, what, buffer, limit))
        timed_out = await self._await_exec(reader, exec_id, timeout)
        code = await self._exit_code(exec_id, what)
        await self._monitors.after(exec_id, floor)
        text = bytes(buffer).decode("utf-8", errors="replace")
        if timed_out:
            return ExecResult(exit_code=code if code >= 0 else 137, output=text, timed_out=True)
        return ExecResult(exit_code=code, output=text)

    def _read_exec(self, exec_id: str, what: str, buffer: bytearray, limit: int) -> None:
        """In a thread: start the exec and read its output into ``buffer``, up to ``limit`` bytes."""
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

    async def _await_exec(self, reader: asyncio.Future[None], exec_id: str, timeout: float) -> bool:
        """Wait for the output to end; kill the command at the timeout (True) or on cancellation."""
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that arrives
            # just as the reader finishes, and the check's runner would then never stop.
            async with asyncio.timeout(timeout):
                await asyncio.shield(reader)
            return False
        except TimeoutError:
            await self._kill_exec(exec_id)
            with contextlib.suppress(TimeoutError, EngineError):
                async with asyncio.timeout(KILL_GRACE):
                    await asyncio.shield(reader)
            return True
        except asyncio.CancelledError:
            await asyncio.shield(self._kill_exec(exec_id))
            raise

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
        if pid > 0 and info.get("Running"):
            kill_tree(pid)  # a shell's children would keep the output pipe open

    async def _exit_code(self, exec_id: str, what: str) -> int:
        deadline = time.monotonic() + KILL_GRACE
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
