"""Real container engines for the companion's tests: a private Podman socket service and a private dockerd.

Each has its own storage, run and socket folders under a short /tmp folder (unix socket paths are limited
to 108 bytes), loads a busybox image built from busybox-static without a registry, and publishes ports on
127.0.0.1 only. ``stop()`` removes every container and ends every process it started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker

# The same private Podman set-up as the demo's (runc, cgroupfs, private storage).
from renderer.demo.engine import CONTAINERS_CONF, STORAGE_CONF
from tests.support.processes import stop_process

IMAGE = "localhost/upstreams-busybox:test"
APPLETS = (
    "sh",
    "httpd",
    "sleep",
    "cat",
    "echo",
    "rm",
    "touch",
    "test",
    "true",
    "false",
    "id",
    "ls",
    "kill",
    "wget",
    "yes",
    "head",
)


def build_image_tar(folder: Path) -> Path:
    """A rootfs with /bin/busybox and its applet links, a web root and /tmp, as a tar file."""
    rootfs = folder / "rootfs"
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    (rootfs / "www").mkdir(exist_ok=True)
    (rootfs / "tmp").mkdir(exist_ok=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in APPLETS:
        link = rootfs / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (rootfs / "www" / "index.html").write_text("hello\n")
    tar = folder / "image.tar"
    with tarfile.open(tar, "w") as out:
        out.add(rootfs, arcname=".")
    return tar


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
        self.env = dict(os.environ)
        if kind == "podman":
            (workdir / "containers.conf").write_text(CONTAINERS_CONF.format(tmp=workdir / "ptmp"))
            (workdir / "storage.conf").write_text(
                STORAGE_CONF.format(root=workdir / "storage", run=workdir / "run")
            )
            self.env["CONTAINERS_CONF"] = str(workdir / "containers.conf")
            self.env["CONTAINERS_STORAGE_CONF"] = str(workdir / "storage.conf")
        self._client: docker.DockerClient | None = None

    # Lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.socket.exists():
            self.socket.unlink()
        if self.kind == "podman":
            argv = ["podman", "system", "service", "--time=0", self.url]
        else:
            argv = [
                "dockerd",
                "--host", self.url,
                "--data-root", str(self.workdir / "root"),
                "--exec-root", str(self.workdir / "exec"),
                "--pidfile", str(self.workdir / "docker.pid"),
                "--ip", "127.0.0.1",
                "--live-restore",
            ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}; see {self.log}")
            # A plain socket first: the SDK leaks its socket when the connection is refused.
            with socket.socket(socket.AF_UNIX) as sock:
                ready = sock.connect_ex(str(self.socket)) == 0
            if ready:
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
            self._kill_leftovers()
            # Both engines leave mounts behind (Podman its overlay folder, dockerd its data root bind-mounted
            # on itself); unmount them so the folders can be deleted.
            for mounted in ("storage/overlay", "storage", "run", "root", "exec"):
                if (self.workdir / mounted).exists():
                    subprocess.run(["umount", "-R", str(self.workdir / mounted)], capture_output=True)

    def _kill_leftovers(self) -> None:
        """conmon / containerd-shim processes of our own storage (found by our unique folder in argv)."""
        marker = str(self.workdir).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline:
                with contextlib.suppress(OSError):
                    os.kill(int(entry.name), signal.SIGKILL)

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
        published = {
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
