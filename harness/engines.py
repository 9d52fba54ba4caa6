"""Real container engines: a private Podman socket service and a private dockerd.

Each has its own storage, run and socket folders under a short /tmp folder (unix socket paths are limited
to 108 bytes), loads a busybox image built from busybox-static without a registry (``image``), and
publishes ports on 127.0.0.1 only. The recipe (config files, environment, command line, readiness) is
here once; ``EngineDaemon`` runs it synchronously for the tests and benchmarks, ``podman.Podman``
asynchronously for the demo. ``stop()`` removes every container and ends every process it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors

from .process import kill_mentioning, stop_process

__all__ = [
    "CONTAINERS_CONF",
    "IMAGE",
    "STORAGE_CONF",
    "EngineDaemon",
    "engine_env",
    "service_argv",
    "socket_answers",
]

IMAGE = "localhost/upstreams-busybox:test"

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


def engine_env(kind: str, workdir: Path, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for running ``kind``'s service and command line; for Podman, with config files of
    ``workdir``'s own (private storage, runc) written and named."""
    if kind != "podman":
        return dict(env)
    (workdir / "containers.conf").write_text(CONTAINERS_CONF.format(tmp=workdir / "ptmp"))
    (workdir / "storage.conf").write_text(STORAGE_CONF.format(root=workdir / "storage", run=workdir / "run"))
    return {
        **env,
        "CONTAINERS_CONF": str(workdir / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(workdir / "storage.conf"),
    }


def service_argv(kind: str, url: str, workdir: Path) -> list[str]:
    """The command line serving ``kind``'s Docker Engine API on ``url``."""
    if kind == "podman":
        return ["podman", "system", "service", "--time=0", url]
    return [
        "dockerd",
        "--host", url,
        "--data-root", str(workdir / "root"),
        "--exec-root", str(workdir / "exec"),
        "--pidfile", str(workdir / "docker.pid"),
        "--ip", "127.0.0.1",
        "--live-restore",
    ]  # fmt: skip


def socket_answers(path: Path) -> bool:
    """Whether something accepts connections on the unix socket ``path``."""
    # A plain socket first: the SDK leaks its socket when the connection is refused.
    with socket.socket(socket.AF_UNIX) as sock:
        return sock.connect_ex(str(path)) == 0


class EngineDaemon:
    """One engine of ours: ``kind`` is "podman" or "docker"; ``url`` its API socket."""

    def __init__(self, kind: str, workdir: Path, image_tar: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self.image_tar = image_tar
        self.socket = workdir / f"{kind}.sock"
        self.url = f"unix://{self.socket}"
        self.log = workdir / f"{kind}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = engine_env(kind, workdir, os.environ)
        self._client: docker.DockerClient | None = None

    # Lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.socket.exists():
            self.socket.unlink()
        argv = service_argv(self.kind, self.url, self.workdir)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}; see {self.log}")
            if socket_answers(self.socket):
                with docker.APIClient(base_url=self.url, version="1.40", timeout=5) as probe:
                    probe.ping()
                break
            time.sleep(0.05)
        else:
            raise TimeoutError(f"{self.kind} does not answer on {self.url}; see {self.log}")
        self._client = docker.DockerClient(base_url=self.url, version="1.40", timeout=60)

    def load_image(self) -> None:
        tool = ["podman", "--url", self.url] if self.kind == "podman" else ["docker", "-H", self.url]
        subprocess.run(
            [*tool, "import", str(self.image_tar), IMAGE], check=True, env=self.env, capture_output=True
        )

    def stop_service(self) -> None:
        """End the API service (Podman's containers keep running; dockerd keeps them with live-restore)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        stop_process(self.proc, signal.SIGTERM, timeout=30)
        self.proc = None

    def stop(self) -> None:
        """Remove every container, end the engine and everything it started, unmount its storage."""
        try:
            if self._client is not None:
                self.remove_all()
        finally:
            self.stop_service()
            if self.kind == "podman":
                subprocess.run(
                    ["podman", "rm", "-af", "-t", "0"], env=self.env, capture_output=True, timeout=60
                )
            # conmon / containerd-shim processes of our own storage (found by our unique folder in argv).
            kill_mentioning(str(self.workdir))
            # Both engines leave mounts behind (Podman its overlay folder, dockerd its data root bind-mounted
            # on itself); unmount them so the folders can be deleted.
            for mounted in ("storage/overlay", "storage", "run", "root", "exec"):
                if (self.workdir / mounted).exists():
                    subprocess.run(["umount", "-R", str(self.workdir / mounted)], capture_output=True)

    # Containers -----------------------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        assert self._client is not None, "the engine is not running"
        return self._client

    def run(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        ports: dict[str, int | None] | None = None,
        command: list[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Start a busybox container; ``ports`` maps "8080/tcp" to a host port on 127.0.0.1 (None: any)."""
        # The SDK takes ("127.0.0.1",) for "any port on that address", which its type stubs do not list.
        published: dict[str, Any] = {
            spec: ("127.0.0.1", host) if host else ("127.0.0.1",) for spec, host in (ports or {}).items()
        }
        return self.client.containers.run(
            IMAGE,
            command or ["httpd", "-f", "-p", "8080", "-h", "/www"],
            name=name,
            labels=labels or {},
            ports=published,
            detach=True,
            **kwargs,
        )

    def remove_all(self) -> None:
        """Remove every container, in parallel (Docker takes about 2 s per running container here)."""

        def remove(container: Any) -> None:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)

        containers = self.client.containers.list(all=True)
        if containers:
            with ThreadPoolExecutor(len(containers)) as pool:
                list(pool.map(remove, containers))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The engine's own command line, without the API service (Podman only)."""
        assert self.kind == "podman"
        return subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True, timeout=60, check=True
        )
