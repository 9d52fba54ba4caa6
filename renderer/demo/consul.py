"""The demo's Consul: a dev agent on free loopback ports, unless the user names one."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp

from .ports import free_port
from .process import Child, PartFailed

__all__ = ["start_consul", "wait_for_leader"]

START_TIMEOUT = 30.0


def _binary(env: Mapping[str, str]) -> str:
    """``CONSUL_BIN`` (the test suite's convention), else consul on the PATH."""
    found = env.get("CONSUL_BIN") or shutil.which("consul", path=env.get("PATH"))
    if not found:
        raise PartFailed(
            "Consul is not installed (no consul on the PATH); install it or pass --consul-address."
        )
    return found


async def start_consul(workdir: Path, env: Mapping[str, str], stack: AsyncExitStack) -> tuple[Child, str]:
    """Start ``consul agent -dev`` with every port free (stopped when ``stack`` closes); return it and
    its HTTP address once it has a leader."""
    http = free_port()
    ports = {"http": http, "serf_lan": free_port(), "serf_wan": free_port(), "server": free_port()}
    hcl = workdir / "consul.hcl"
    hcl.write_text(
        "ports { " + " ".join(f"{k} = {v}" for k, v in ports.items()) + " dns = -1 grpc = -1 }\n"
        f'data_dir = "{workdir / "consul-data"}"\nlog_level = "warn"\n'
    )
    argv = [_binary(env), "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1"]
    child = Child("Consul", [*argv, "-config-file", str(hcl)], workdir / "consul.log", env)
    stack.push_async_callback(child.stop)
    await child.start()
    address = f"http://127.0.0.1:{http}"
    await wait_for_leader(address, child)
    return child, address


async def wait_for_leader(address: str, child: Child | None = None) -> None:
    """Wait until Consul at ``address`` has a leader; raise PartFailed naming Consul otherwise."""
    deadline = time.monotonic() + START_TIMEOUT
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if child is not None and not child.running:
                raise child.failure("exited at start-up")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                async with session.get(f"{address}/v1/status/leader") as resp:
                    if resp.status == 200 and (await resp.json()) not in ("", None):
                        return
            await asyncio.sleep(0.1)
    raise PartFailed(f"Consul at {address} has no leader after {START_TIMEOUT:g}s.")
