"""A real Consul agent on free loopback ports: one recipe (config file and command line), started either
synchronously with a small HTTP helper (tests, benchmarks) or as an asynchronous ``Child`` (the demo)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp

from .ports import distinct_free_ports, free_port
from .process import Child, PartFailed, stop_process

__all__ = ["LEADER_TIMEOUT", "ConsulAgent", "consul_binary", "start_agent", "wait_for_leader"]

LEADER_TIMEOUT = 30.0


def consul_binary(env: Mapping[str, str]) -> str | None:
    """``CONSUL_BIN`` (so tests and the demo can run a current Consul), else consul on the PATH."""
    return env.get("CONSUL_BIN") or shutil.which("consul", path=env.get("PATH"))


class ConsulAgent:
    """``consul agent -dev`` with every port free; ``api()`` speaks to its HTTP API."""

    def __init__(
        self,
        workdir: Path,
        extra_hcl: str = "",
        https: bool = False,
        token: str | None = None,
        persistent: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        # Tests and benchmarks pass no env: theirs is the process's (CONSUL_BIN); the demo passes its own.
        self.env = dict(os.environ if env is None else env)
        # persistent: a one-node server keeping its data on disk, so a restart keeps the catalog
        # (a -dev agent forgets everything); while it elects itself, it answers "No cluster leader".
        self.persistent = persistent
        self.https_port = free_port() if https else None
        self.token = token  # sent with every api() call (the management token when ACLs are on)
        self.binary = consul_binary(self.env) or "/usr/bin/consul"
        self.http_port = free_port()
        self.extra_hcl = extra_hcl
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "consul.log"

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def command(self) -> list[str]:
        """Write the agent's config file (every port free) and return its command line."""
        # Chosen together and apart from the HTTP ports: two free_port() calls in a row can return the
        # same port (seen on a restart: serf's WAN and LAN on one port, and the agent never led).
        taken = {self.http_port, self.https_port}
        serf_lan, serf_wan, server = [p for p in distinct_free_ports(5) if p not in taken][:3]
        ports = {"http": self.http_port, "serf_lan": serf_lan, "serf_wan": serf_wan, "server": server}
        if self.https_port:
            ports["https"] = self.https_port
        hcl = (
            "ports { "
            + " ".join(f"{k} = {v}" for k, v in ports.items())
            + " dns = -1 grpc = -1 }\n"
            + 'log_level = "warn"\n'
            + ("performance { raft_multiplier = 1 }\n" if self.persistent else "")
            + self.extra_hcl
        )
        config = self.workdir / "agent.hcl"
        config.write_text(hcl)
        return [
            self.binary,
            "agent",
            *self._mode_args(),
            "-bind",
            "127.0.0.1",
            "-client",
            "127.0.0.1",
            "-config-file",
            str(config),
        ]

    def start(self) -> None:
        """Start the agent and block until it has a leader."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.wait_leader()

    def _mode_args(self) -> list[str]:
        if not self.persistent:
            return ["-dev"]
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        return ["-server", "-bootstrap-expect=1", "-data-dir", str(data), "-node", "persistent", "-ui=false"]

    def wait_leader(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.api("GET", "/v1/status/leader") not in ("", None):
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"Consul at {self.address} has no leader after {timeout}s; see {self.log}")

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM)
        self.proc = None

    def kill(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.address + path, data=data, method=method)
        if token or self.token:
            req.add_header("X-Consul-Token", token or self.token or "")
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw.strip() else None

    # Conveniences used across tests -------------------------------------------------------------

    def register(self, name: str, sid: str, port: int, address: str = "127.0.0.1", **extra: Any) -> None:
        body = {"ID": sid, "Name": name, "Port": port, "Address": address, **extra}
        self.api("PUT", "/v1/agent/service/register", body)

    def register_ttl(self, name: str, sid: str, port: int, status: str = "passing", **extra: Any) -> None:
        check = {"CheckID": f"ttl:{sid}", "TTL": "10m", "Status": status}
        self.register(name, sid, port, Check=check, **extra)

    def set_ttl(self, sid: str, status: str) -> None:
        verb = {"passing": "pass", "warning": "warn", "critical": "fail"}[status]
        self.api("PUT", f"/v1/agent/check/{verb}/ttl:{sid}")

    def deregister(self, sid: str) -> None:
        self.api("PUT", f"/v1/agent/service/deregister/{sid}")

    def services(self) -> dict[str, Any]:
        return self.api("GET", "/v1/agent/services")  # type: ignore[no-any-return]

    def clear(self) -> None:
        """Deregister every service (and every node that is no agent, which tests register through
        the catalog) and delete every key, so tests sharing one agent start clean."""
        for sid in self.services():
            self.deregister(sid)
        agents = {member["Name"] for member in self.api("GET", "/v1/agent/members")}
        for node in self.api("GET", "/v1/catalog/nodes"):
            if node["Node"] not in agents:
                self.api("PUT", "/v1/catalog/deregister", {"Node": node["Node"]})
        with contextlib.suppress(urllib.error.HTTPError):
            self.api("DELETE", "/v1/kv/?recurse")


async def start_agent(agent: ConsulAgent, stack: AsyncExitStack, part: str = "Consul") -> Child:
    """Start ``agent`` as an asynchronous child (stopped when ``stack`` closes) and wait for its leader;
    raise PartFailed naming ``part`` if it exits or never elects one."""
    child = Child(part, agent.command(), agent.log, agent.env)
    stack.push_async_callback(child.stop)
    await child.start()
    await wait_for_leader(agent.address, child)
    return child


async def wait_for_leader(address: str, child: Child | None = None, timeout: float = LEADER_TIMEOUT) -> None:
    """Wait until Consul at ``address`` has a leader; raise PartFailed naming Consul otherwise."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if child is not None and not child.running:
                raise child.failure("exited at start-up")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                async with session.get(f"{address}/v1/status/leader") as resp:
                    if resp.status == 200 and (await resp.json()) not in ("", None):
                        return
            await asyncio.sleep(0.1)
    raise PartFailed(f"Consul at {address} has no leader after {timeout:g}s.")
