"""The demo's nginx: the harness's server under a private prefix, one server on 127.0.0.1 proxying to the
rendered ``primes`` upstream; and what the demo watches of it (reloads, the sidecar's first render)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path

from harness.nginx import NginxServer, nginx_binary, start_server
from harness.ports import listen_problem
from harness.process import Child, PartFailed

from .board import Board

__all__ = ["first_render", "follow_reloads", "nginx_paths", "reserve_check", "start_nginx"]

# Until the sidecar's first render: an upstream nginx accepts that answers 502 (the template's empty case).
PLACEHOLDER = "upstream primes {\n    server 127.0.0.1:1 down;\n}\n"


def reserve_check(part: str, port: int) -> None:
    """Raise PartFailed naming ``part`` when 127.0.0.1:port cannot be listened on."""
    why = listen_problem(port)
    if why is not None:
        raise PartFailed(f"{part} cannot listen on 127.0.0.1:{port}: {why}; choose another port with --port.")


def nginx_paths(workdir: Path, port: int, env: Mapping[str, str]) -> NginxServer:
    """The demo's nginx (its folder created) on ``port``; raise PartFailed if nginx is not installed."""
    if nginx_binary(env) is None:
        raise PartFailed("nginx is not installed (no nginx on the PATH or in /usr/sbin).")
    return NginxServer(workdir / "nginx", backends=0, upstream="primes", port=port, env=env)


async def start_nginx(server: NginxServer, stack: AsyncExitStack) -> Child:
    """Write the config and start nginx (stopped when ``stack`` closes); raise PartFailed naming nginx
    and the port if it cannot listen."""
    if not server.upstreams.exists():
        server.upstreams.write_text(PLACEHOLDER)
    return await start_server(server, stack)


async def follow_reloads(paths: NginxServer, board: Board) -> None:
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


async def first_render(paths: NginxServer, sidecar: Child, timeout: float = 60.0) -> None:
    """Wait until the sidecar has replaced the placeholder (it is then watching Consul)."""
    deadline = time.monotonic() + timeout
    while paths.upstreams.read_text() == PLACEHOLDER:
        if not sidecar.running:
            raise sidecar.failure("exited at start-up")
        if time.monotonic() > deadline:
            raise PartFailed(f"{sidecar.part} did not render its template within {timeout:g}s.")
        await asyncio.sleep(0.05)
