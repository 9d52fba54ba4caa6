"""A private Podman run asynchronously (the demo's): the engines' recipe (its own storage, run folder and
Docker-compatible socket under a folder of its own), and the busybox image imported without a registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import docker
import docker.errors

from .engines import engine_env, service_argv, socket_answers
from .image import BUSYBOX, build_image_tar
from .process import Child, PartFailed

__all__ = ["IMAGE", "Podman", "engine_missing"]

IMAGE = "localhost/upstreams-demo-busybox:latest"
START_TIMEOUT = 30.0


def engine_missing(env: Mapping[str, str]) -> str | None:
    """Why containers cannot be used here, or None when Podman and a static busybox are available."""
    path = env.get("PATH")
    if shutil.which("podman", path=path) is None:
        return "podman is not installed"
    if not BUSYBOX.is_file():
        return f"{BUSYBOX} (busybox-static) is not installed, so there is no image to run"
    return None


class Podman:
    """``podman system service`` on a socket of its own; ``client`` is the Docker SDK on it."""

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.socket = workdir / "podman.sock"
        self.url = f"unix://{self.socket}"
        self.env = engine_env("podman", workdir, env)
        argv = service_argv("podman", self.url, workdir)
        self.child = Child("Podman", argv, workdir / "podman.log", self.env)
        self._client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        """The Docker SDK client on our socket."""
        assert self._client is not None, "Podman is not running"
        return self._client

    async def start(self) -> None:
        """Start the service, wait for its socket, import the image."""
        await self.child.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not socket_answers(self.socket):
            if not self.child.running:
                raise self.child.failure("exited at start-up")
            if time.monotonic() > deadline:
                raise PartFailed(f"Podman does not answer on {self.url} after {START_TIMEOUT:g}s.")
            await asyncio.sleep(0.05)
        self._client = docker.DockerClient(base_url=self.url, version="1.40", timeout=60)
        tar = await asyncio.to_thread(build_image_tar, self.workdir)
        await self._podman("import", str(tar), IMAGE)

    async def _podman(self, *args: str) -> None:
        result = await asyncio.to_thread(
            subprocess.run,
            ["podman", "--url", self.url, *args],
            env=self.env,
            capture_output=True,
            timeout=120,
        )
        if result.returncode != 0:
            text = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()
            raise PartFailed(f"podman {args[0]} failed: {text[-1] if text else result.returncode}.")

    async def stop(self) -> None:
        """Remove every container, stop the service, and clear anything it left running or mounted."""
        if self._client is not None:
            with contextlib.suppress(docker.errors.DockerException, OSError):
                await asyncio.to_thread(self._remove_all)
            self._client.close()
            self._client = None
        await self.child.stop()
        # Containers whose removal failed above: the command line reaches the same private storage.
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            await asyncio.to_thread(
                subprocess.run,
                ["podman", "rm", "-af", "-t", "0"],
                env=self.env,
                capture_output=True,
                timeout=60,
            )

    def _remove_all(self) -> None:
        for container in self.client.containers.list(all=True):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
