"""The demo's nginx: a private prefix, one server on 127.0.0.1 proxying to the rendered ``primes`` upstream."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from .board import Board
from .ports import accepts
from .process import Child, PartFailed

__all__ = ["NginxPaths", "first_render", "follow_reloads", "nginx_paths", "start_nginx"]

START_TIMEOUT = 10.0
# Until the sidecar's first render: an upstream nginx accepts that answers 502 (the template's empty case).
PLACEHOLDER = "upstream primes {\n    server 127.0.0.1:1 down;\n}\n"


@dataclass(frozen=True)
class NginxPaths:
    """Where the demo's nginx keeps its files, and the commands the sidecar runs."""

    prefix: Path
    binary: str

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def upstreams(self) -> Path:
        return self.prefix / "conf.d" / "upstreams.conf"

    @property
    def pid_file(self) -> Path:
        return self.prefix / "nginx.pid"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    @property
    def check_command(self) -> tuple[str, ...]:
        return (self.binary, "-t", "-q", "-p", str(self.prefix), "-c", str(self.conf))


def _config(paths: NginxPaths, port: int) -> str:
    temp = "\n".join(
        f"    {kind}_temp_path {paths.prefix}/tmp_{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
worker_processes 1;
pid {paths.pid_file};
error_log {paths.error_log} notice;
events {{ worker_connections 512; }}
http {{
    access_log off;
{temp}
    include {paths.upstreams.parent}/*.conf;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://primes;
            proxy_connect_timeout 1s;
            proxy_next_upstream error timeout http_502;
        }}
    }}
}}
"""


def nginx_paths(workdir: Path, env: Mapping[str, str]) -> NginxPaths:
    """The demo's nginx folder (created) and binary; raise PartFailed if nginx is not installed."""
    binary = shutil.which("nginx", path=env.get("PATH")) or shutil.which("nginx", path="/usr/sbin:/sbin")
    if binary is None:
        raise PartFailed("nginx is not installed (no nginx on the PATH or in /usr/sbin).")
    paths = NginxPaths(prefix=workdir / "nginx", binary=binary)
    paths.upstreams.parent.mkdir(parents=True)
    return paths


async def start_nginx(paths: NginxPaths, port: int, env: Mapping[str, str], stack: AsyncExitStack) -> Child:
    """Write the config and start nginx (stopped when ``stack`` closes); raise PartFailed naming nginx
    and the port if it cannot listen."""
    paths.conf.write_text(_config(paths, port))
    if not paths.upstreams.exists():
        paths.upstreams.write_text(PLACEHOLDER)
    argv = [paths.binary, "-p", str(paths.prefix), "-c", str(paths.conf)]
    child = Child("nginx", argv, paths.prefix / "stdout.log", env)
    stack.push_async_callback(child.stop)
    await child.start()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not child.running:
            if "Address already in use" in child.last_line():
                raise PartFailed(f"nginx cannot listen on 127.0.0.1:{port}: the port is in use.")
            raise child.failure("exited at start-up")
        if paths.pid_file.exists() and await accepts(port):
            return child
        await asyncio.sleep(0.05)
    raise PartFailed(f"nginx did not listen on 127.0.0.1:{port} within {START_TIMEOUT:g}s.")


async def follow_reloads(paths: NginxPaths, board: Board) -> None:
    """Count reloads in nginx's error log (the master logs each SIGHUP at notice level), until cancelled."""
    offset = 0
    while True:
        with contextlib.suppress(OSError):
            with paths.error_log.open("rb") as log:
                log.seek(offset)
                chunk = log.read()
            # Only whole lines: a line being written is read again next time.
            complete = chunk[: chunk.rfind(b"\n") + 1]
            offset += len(complete)
            for _ in range(complete.count(b"(SIGHUP) received")):
                board.reloads += 1
                board.say(f"nginx reloaded (reload #{board.reloads})")
        await asyncio.sleep(0.02)


async def first_render(paths: NginxPaths, sidecar: Child, timeout: float = 60.0) -> None:
    """Wait until the sidecar has replaced the placeholder (it is then watching Consul)."""
    deadline = time.monotonic() + timeout
    while paths.upstreams.read_text() == PLACEHOLDER:
        if not sidecar.running:
            raise sidecar.failure("exited at start-up")
        if time.monotonic() > deadline:
            raise PartFailed(f"{sidecar.part} did not render its template within {timeout:g}s.")
        await asyncio.sleep(0.05)
