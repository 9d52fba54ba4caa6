"""A private Podman for the demo: its own storage, run folder and Docker-compatible socket under the demo's
temporary folder, and a busybox image built from the host's static busybox, imported without a registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path

import docker
import docker.errors

from .process import Child, PartFailed

__all__ = ["IMAGE", "Podman", "engine_missing"]

IMAGE = "localhost/upstreams-demo-busybox:latest"
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "httpd", "echo", "test", "touch", "rm", "sleep", "cat")
START_TIMEOUT = 30.0

# crun fails on some hosts (hybrid cgroups, setrlimit); runc with cgroupfs works everywhere we tried.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
tmp_dir = "{tmp}"
"""
STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{root}"
runroot = "{run}"
"""


def engine_missing(env: Mapping[str, str]) -> str | None:
    """Why containers cannot be used here, or None when Podman and a static busybox are available."""
    path = env.get("PATH")
    if shutil.which("podman", path=path) is None:
        return "podman is not installed"
    if not BUSYBOX.is_file():
        return f"{BUSYBOX} (busybox-static) is not installed, so there is no image to run"
    return None


def _image_tar(folder: Path) -> Path:
    rootfs = folder / "rootfs"
    for sub in ("bin", "prime", "tmp"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    tar = folder / "image.tar"
    with tarfile.open(tar, "w") as out:
        out.add(rootfs, arcname=".")
    shutil.rmtree(rootfs)
    return tar


class Podman:
    """``podman system service`` on a socket of the demo's own; ``client`` is the Docker SDK on it."""

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.socket = workdir / "podman.sock"
        self.url = f"unix://{self.socket}"
        (workdir / "containers.conf").write_text(CONTAINERS_CONF.format(tmp=workdir / "tmp"))
        (workdir / "storage.conf").write_text(
            STORAGE_CONF.format(root=workdir / "storage", run=workdir / "run")
        )
        self.env = {
            **env,
            "CONTAINERS_CONF": str(workdir / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(workdir / "storage.conf"),
        }
        self.child = Child(
            "Podman", ["podman", "system", "service", "--time=0", self.url], workdir / "podman.log", self.env
        )
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
        while not self._socket_answers():
            if not self.child.running:
                raise self.child.failure("exited at start-up")
            if time.monotonic() > deadline:
                raise PartFailed(f"Podman does not answer on {self.url} after {START_TIMEOUT:g}s.")
            await asyncio.sleep(0.05)
        self._client = docker.DockerClient(base_url=self.url, version="1.40", timeout=60)
        tar = await asyncio.to_thread(_image_tar, self.workdir)
        await self._podman("import", str(tar), IMAGE)

    def _socket_answers(self) -> bool:
        # A plain socket first: the SDK leaks its socket when the connection is refused.
        with socket.socket(socket.AF_UNIX) as sock:
            return sock.connect_ex(str(self.socket)) == 0

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
