"""The prime service's replicas: Podman containers registered from their labels, or local processes
registered through service files when no container engine is available. Both answer ``NAME PRIME``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import docker.errors

from harness.podman import IMAGE, Podman
from harness.ports import accepts, free_port
from harness.process import Child, PartFailed

__all__ = ["ContainerReplicas", "ProcessReplicas", "Replica", "ReplicaSet", "prime_for"]

SERVICE = "prime"
CHECK_INTERVAL = "500ms"  # the companion accepts any positive duration; short, so changes show quickly
CHECK_TIMEOUT = "5s"  # generous: exec through Podman slows down a lot on a busy host
# The (10**n)-th primes: replica n answers with its own.
PRIMES = (29, 541, 7919, 104729, 1299709, 15485863, 179424673, 2038074743)


def prime_for(number: int) -> int:
    """The prime replica ``number`` answers with."""
    return PRIMES[(number - 1) % len(PRIMES)]


@dataclass(frozen=True)
class Replica:
    """One replica: its name (``prime-N``) and the host port it answers on."""

    name: str
    port: int


class ReplicaSet(Protocol):
    """What the story and the keys do to replicas."""

    kind: str  # for the output: "Podman containers" or "local processes"

    async def start(self, number: int) -> Replica:
        """Start replica ``number``; return it once it runs."""

    async def fail(self, replica: Replica) -> None:
        """Make its health check fail."""

    async def recover(self, replica: Replica) -> None:
        """Make its health check pass again."""

    async def kill(self, replica: Replica) -> None:
        """Kill it: it stops answering and leaves Consul."""

    async def close(self) -> None:
        """Stop and remove every replica."""


class ContainerReplicas:
    """Busybox httpd containers on 127.0.0.1, labelled for the companion (registrator's conventions)."""

    kind = "Podman containers (registered by upstreams-registrar from their labels)"

    def __init__(self, podman: Podman) -> None:
        self.podman = podman
        self._containers: dict[str, Any] = {}

    async def start(self, number: int) -> Replica:
        replica = Replica(f"prime-{number}", free_port())
        script = (
            f"echo {replica.name} {prime_for(number)} > /prime/index.html && exec httpd -f -p 8080 -h /prime"
        )
        labels = {
            "SERVICE_NAME": SERVICE,
            # Run inside the container by the companion (split into argv; no shell of its own), its result
            # reported to a TTL check. Exit 2 is critical (exit 1 would only be a warning).
            "SERVICE_CHECK_SCRIPT": "sh -c 'test ! -e /tmp/fail || exit 2'",
            "SERVICE_CHECK_INTERVAL": CHECK_INTERVAL,
            "SERVICE_CHECK_TIMEOUT": CHECK_TIMEOUT,
            "upstreams-demo": "replica",
        }
        try:
            self._containers[replica.name] = await asyncio.to_thread(
                self.podman.client.containers.run,
                IMAGE,
                ["sh", "-c", script],
                name=replica.name,
                labels=labels,
                ports={"8080/tcp": ("127.0.0.1", replica.port)},
                detach=True,
            )
        except docker.errors.DockerException as exc:
            raise PartFailed(f"Podman could not start container {replica.name}: {exc}") from exc
        return replica

    async def _exec(self, replica: Replica, *argv: str) -> None:
        container = self._containers[replica.name]
        with contextlib.suppress(docker.errors.DockerException):
            await asyncio.to_thread(container.exec_run, list(argv))

    async def fail(self, replica: Replica) -> None:
        await self._exec(replica, "touch", "/tmp/fail")

    async def recover(self, replica: Replica) -> None:
        await self._exec(replica, "rm", "-f", "/tmp/fail")

    async def kill(self, replica: Replica) -> None:
        container = self._containers.pop(replica.name)
        with contextlib.suppress(docker.errors.DockerException):
            await asyncio.to_thread(container.kill)

    async def close(self) -> None:
        self._containers.clear()  # Podman.stop removes every container of the private engine


class ProcessReplicas:
    """``python -m http.server`` processes, each declared by a service file with a host script check."""

    kind = "local processes (no container engine: {why}; registered through service files)"

    def __init__(self, workdir: Path, services_dir: Path, env: Mapping[str, str], why: str) -> None:
        self.workdir = workdir
        self.services_dir = services_dir
        self.env = env
        self.kind = ProcessReplicas.kind.format(why=why)
        self._children: dict[str, Child] = {}

    def _folder(self, replica: Replica) -> Path:
        return self.workdir / "replicas" / replica.name

    async def start(self, number: int) -> Replica:
        replica = Replica(f"prime-{number}", free_port())
        www = self._folder(replica)
        www.mkdir(parents=True)
        (www / "index.html").write_text(f"{replica.name} {prime_for(number)}\n")
        argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(www)]
        child = Child(replica.name, [*argv, str(replica.port)], www.parent / f"{replica.name}.log", self.env)
        self._children[replica.name] = await child.start()
        await _listening(replica.port, child)
        # Written once it answers, as a container's labels are read once it has started.
        service = {
            "name": SERVICE,
            "id": f"upstreams-demo:{replica.name}",
            "port": replica.port,
            "checks": [
                {
                    "script": ["sh", "-c", f"test ! -e {www / 'fail'} || exit 2"],
                    "interval": CHECK_INTERVAL,
                    "timeout": CHECK_TIMEOUT,
                }
            ],
        }
        (self.services_dir / f"{replica.name}.json").write_text(json.dumps(service, indent=2))
        return replica

    async def fail(self, replica: Replica) -> None:
        (self._folder(replica) / "fail").touch()

    async def recover(self, replica: Replica) -> None:
        (self._folder(replica) / "fail").unlink(missing_ok=True)

    async def kill(self, replica: Replica) -> None:
        child = self._children.pop(replica.name)
        await child.stop(sig=signal.SIGKILL)
        # A dead container leaves Consul on its own; a dead process's service file has to go with it.
        (self.services_dir / f"{replica.name}.json").unlink(missing_ok=True)

    async def close(self) -> None:
        for child in self._children.values():
            await child.stop()
        self._children.clear()


async def _listening(port: int, child: Child, timeout: float = 10.0) -> None:
    """Wait until the replica accepts connections (Python takes a moment to start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.running:
            raise child.failure("exited at start-up")
        if await accepts(port):
            return
        await asyncio.sleep(0.02)
    raise PartFailed(f"{child.part} did not listen on 127.0.0.1:{port} within {timeout:g}s.")
