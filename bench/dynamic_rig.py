"""nginx with the Lua module and the sidecar's snippet (``[nginx] dynamic = true``), and its update endpoint.

``LuaNginx`` is the harness's (harness/lua.py): an ``NginxServer`` loading Debian's Lua module and
including the snippet ``upstreams nginx-snippet`` prints (shared dict, Lua paths, worker start-up, the
endpoint on a loopback port of its own). ``dynamic_config`` points a sidecar at the same endpoint and
state file.

``push`` sends a peer document with the contract's next generation; the push floors use it directly,
with no sidecar in between.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.lua import HOOK, LuaNginx
from harness.nginx import LUA_MODULES

from .rig import ConsulAgent, sidecar_config

__all__ = [
    "HOOK",
    "LuaNginx",
    "dynamic_config",
    "hooked",
    "lua_module",
    "lua_nginx",
    "next_generation",
    "peers_of",
    "push",
    "settings",
]

BLOCK = re.compile(r"^upstream (\S+) \{\n(.*?)^\}", re.S | re.M)
SERVER = re.compile(r"^\s*server (\d+\.\d+\.\d+\.\d+):(\d+)([^;]*);", re.M)


def lua_module() -> bool:
    """Whether Debian's Lua module for nginx (and its NDK) is installed where the harness loads it from."""
    return all(Path(line.split()[1].rstrip(";")).is_file() for line in LUA_MODULES)


def settings(nginx: LuaNginx) -> str:
    """The ``[nginx]`` keys a sidecar needs for ``nginx``'s endpoint and state file."""
    return (
        f'dynamic = true\ndynamic_endpoint = "127.0.0.1:{nginx.endpoint_port}"\n'
        f'dynamic_state = "{nginx.state_file}"\n'
    )


@contextlib.contextmanager
def lua_nginx(folder: Path, upstream: str = "primes", initial: str = "") -> Iterator[LuaNginx]:
    """A started ``LuaNginx`` (one worker, as the classic nginx) whose upstreams file holds ``initial``."""
    nginx = LuaNginx(folder, workers=1, upstream=upstream)
    nginx.server.upstreams.write_text(initial)
    try:
        nginx.start()
        yield nginx
    finally:
        nginx.stop()


def dynamic_config(
    folder: Path,
    consul: ConsulAgent,
    nginx: LuaNginx,
    template: str,
    wait: tuple[str, str] = ("0s", "0s"),
) -> Path:
    """``sidecar_config`` with ``[nginx] dynamic = true`` on ``nginx``'s endpoint and state file."""
    config = sidecar_config(folder, consul, nginx.server, template, wait)
    text = config.read_text()
    config.write_text(text.replace("[nginx]\n", f"[nginx]\n{settings(nginx)}", 1))
    return config


def hooked(name: str, servers: str) -> str:
    """An upstream block as the macro library renders it with ``dynamic`` on (``servers``: its lines)."""
    return f"upstream {name} {{\n{servers}{HOOK.format(name=name)}}}\n"


def peers_of(conf: str) -> dict[str, list[dict[str, Any]]]:
    """Every upstream of a rendered file and its peers in the push format (``down`` servers left out)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for block in BLOCK.finditer(conf):
        peers = []
        for m in SERVER.finditer(block.group(2)):
            flags = m.group(3)
            if " down" in flags:
                continue
            weight = re.search(r"weight=(\d+)", flags)
            peers.append(
                {
                    "address": m.group(1),
                    "port": int(m.group(2)),
                    "weight": int(weight.group(1)) if weight else 1,
                    "backup": " backup" in flags,
                }
            )
        out[block.group(1)] = peers
    return out


def next_generation(last: int) -> int:
    """The contract's generation rule: strictly increasing, and ahead of any restarted writer's."""
    return max(last + 1, int(time.time() * 1000))


def push(nginx: LuaNginx, upstreams: dict[str, list[dict[str, Any]]], full: bool = False) -> None:
    """POST the peers of ``upstreams`` with the next generation; raise if nginx refuses them."""
    status, body = nginx.push(upstreams, full=full, generation=next_generation(nginx.generation))
    if status != 200:
        raise RuntimeError(f"the endpoint refused a push with HTTP {status}: {body}")
