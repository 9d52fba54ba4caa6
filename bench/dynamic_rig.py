"""nginx with the Lua module and the sidecar's snippet (``[nginx] dynamic = true``), and its update endpoint.

``LuaNginx`` is the harness's ``NginxServer`` loading Debian's Lua module and including the text
``upstreams nginx-snippet`` prints (shared dict, Lua paths, worker start-up, the endpoint on a loopback
port of its own). The snippet comes from the real command, fed a config that names the same endpoint
and state file as the dynamic sidecar's, so the benchmark runs exactly what a user would include.

``push`` and ``state`` speak to the endpoint (``POST`` / ``GET /upstreams/peers``); the push floors use
them directly, with no sidecar in between.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.nginx import LUA_MODULES, NginxServer
from harness.ports import free_port
from harness.sidecar import console_script

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
    "state",
]

HOOK = '    balancer_by_lua_block {{ require("upstreams.balancer").balance("{name}") }}\n'
BLOCK = re.compile(r"^upstream (\S+) \{\n(.*?)^\}", re.S | re.M)
SERVER = re.compile(r"^\s*server (\d+\.\d+\.\d+\.\d+):(\d+)([^;]*);", re.M)


class LuaNginx(NginxServer):
    """The harness's nginx loading the Lua module, with the snippet for its own endpoint and state file."""

    def __init__(self, workdir: Path, upstream: str = "primes") -> None:
        self.state_file = workdir / "conf.d" / "upstreams-dynamic.json"
        self.endpoint_port = free_port()
        super().__init__(workdir, upstream=upstream, lua=True)
        while self.endpoint_port in {self.port, *self.backends.values()}:
            self.endpoint_port = free_port()  # chosen apart from the harness's ports: never the same one
        self.snippet = snippet(self)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.endpoint_port}"

    def settings(self) -> str:
        """The ``[nginx]`` keys a sidecar (or the snippet command) needs for this nginx."""
        return f'dynamic = true\ndynamic_endpoint = "{self.endpoint}"\ndynamic_state = "{self.state_file}"\n'


def lua_module() -> bool:
    """Whether Debian's Lua module for nginx (and its NDK) is installed where the harness loads it from."""
    return all(Path(line.split()[1].rstrip(";")).is_file() for line in LUA_MODULES)


def snippet(nginx: LuaNginx) -> str:
    """What ``upstreams nginx-snippet`` prints for a config naming ``nginx``'s endpoint and state file."""
    folder = nginx.dir / "snippet"
    folder.mkdir(exist_ok=True)
    (folder / "t.j2").write_text("")
    config = folder / "snippet.toml"
    config.write_text(
        f'[nginx]\n{nginx.settings()}\n[[template]]\nsource = "t.j2"\n'
        f'destination = "{nginx.conf_d / "upstreams.conf"}"\n'
    )
    argv = [*console_script("upstreams", "renderer.cli"), "nginx-snippet", "--config", str(config)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"upstreams nginx-snippet failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


@contextlib.contextmanager
def lua_nginx(folder: Path, upstream: str = "primes", initial: str = "") -> Iterator[LuaNginx]:
    """A started ``LuaNginx`` whose conf.d/upstreams.conf holds ``initial``; stopped on exit."""
    server = LuaNginx(folder, upstream=upstream)
    server.upstreams.write_text(initial)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def dynamic_config(
    folder: Path,
    consul: ConsulAgent,
    nginx: LuaNginx,
    template: str,
    wait: tuple[str, str] = ("0s", "0s"),
) -> Path:
    """``sidecar_config`` with ``[nginx] dynamic = true`` on ``nginx``'s endpoint and state file."""
    config = sidecar_config(folder, consul, nginx, template, wait)
    text = config.read_text()
    config.write_text(text.replace("[nginx]\n", f"[nginx]\n{nginx.settings()}", 1))
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


def _call(port: int, method: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, "/upstreams/peers", body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {"error": raw.decode(errors="replace")}
    return resp.status, data if isinstance(data, dict) else {"answer": data}


def push(port: int, generation: int, upstreams: dict[str, list[dict[str, Any]]], full: bool = False) -> int:
    """POST the peers of ``upstreams``; the generation nginx now holds. Raises on any refusal."""
    body = json.dumps({"generation": generation, "full": full, "upstreams": upstreams}).encode()
    status, data = _call(port, "POST", body)
    if status != 200:
        raise RuntimeError(f"the endpoint refused a push with HTTP {status}: {data}")
    return int(data.get("generation", generation))


def state(port: int) -> dict[str, Any]:
    """The endpoint's full state document (``GET``)."""
    status, data = _call(port, "GET")
    if status != 200:
        raise RuntimeError(f"the endpoint answered HTTP {status} to GET: {data}")
    return data
