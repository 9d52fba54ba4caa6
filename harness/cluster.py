"""A real Consul cluster on this machine: servers and client agents, each on its own loopback address.

Every agent gets its own 127.0.0.x (x from 2 to 250, none another process listens on), its own free
ports and its own data folder; they find each other over serf with ``retry_join``. Helpers kill
(SIGKILL: the host is gone), pause (SIGSTOP), resume and restart any one, and find the leader. Timers
are shortened (``raft_multiplier = 1``, fast gossip) so a leader election or a dead node is seen in
seconds, not tens of seconds.
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import time
import urllib.error
from pathlib import Path
from typing import Any

from .consul import ConsulAgent
from .process import stop_process

# Gossip tuned down so a killed node is suspected and declared failed within a few seconds.
FAST_GOSSIP = (
    'gossip_lan { gossip_interval = "100ms" probe_interval = "400ms" probe_timeout = "200ms" '
    "suspicion_mult = 3 }\n"
)
# Servers keep Prometheus counters (consul_rpc_request, consul_rpc_query) for the many-sidecars benchmark.
TELEMETRY = 'telemetry { prometheus_retention_time = "1m" disable_hostname = true }\n'
_handed_out: set[str] = set()


def loopback_addresses(count: int) -> list[str]:
    """``count`` distinct 127.0.0.x addresses no socket on this machine is bound to."""
    busy = set(_handed_out)
    for table in ("/proc/net/tcp", "/proc/net/udp"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            hex_ip = line.split()[1].split(":")[0]
            busy.add(".".join(str(int(hex_ip[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    free = [f"127.0.0.{x}" for x in range(2, 251) if f"127.0.0.{x}" not in busy]
    chosen = random.sample(free, count)
    _handed_out.update(chosen)
    return chosen


def _free_port_on(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


class ClusterAgent(ConsulAgent):
    """One agent of a cluster (server or client) on its own loopback address; api() speaks to it."""

    def __init__(self, workdir: Path, *, name: str, ip: str, server: bool, datacenter: str = "dc1") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir)
        self.name, self.ip, self.server, self.datacenter = name, ip, server, datacenter
        self.http_port = _free_port_on(ip)
        self.serf_lan = _free_port_on(ip)
        self.serf_wan = _free_port_on(ip)
        self.rpc_port = _free_port_on(ip)
        self.join: list[str] = []
        self.join_wan: list[str] = []
        self.expect = 0
        self.paused = False

    @property
    def address(self) -> str:
        return f"http://{self.ip}:{self.http_port}"

    @property
    def serf_address(self) -> str:
        return f"{self.ip}:{self.serf_lan}"

    @property
    def rpc_address(self) -> str:
        return f"{self.ip}:{self.rpc_port}"

    def hcl(self) -> str:
        """The agent's whole configuration."""
        ports = f"http = {self.http_port} serf_lan = {self.serf_lan} serf_wan = {self.serf_wan}"
        lines = [
            f'node_name = "{self.name}"',
            f'datacenter = "{self.datacenter}"',
            f'data_dir = "{self.workdir / "data"}"',
            f'bind_addr = "{self.ip}"',
            f'client_addr = "{self.ip}"',
            f"ports {{ {ports} server = {self.rpc_port} dns = -1 grpc = -1 }}",
            f"server = {'true' if self.server else 'false'}",
            'log_level = "info"',
            "disable_update_check = true",
            "leave_on_terminate = false",
            'retry_interval = "1s"',
            "performance { raft_multiplier = 1 }",
            "retry_join = [" + ", ".join(f'"{a}"' for a in self.join) + "]",
            FAST_GOSSIP,
            self.extra_hcl,
        ]
        if self.server:
            lines.append(f"bootstrap_expect = {self.expect}")
            lines.append('retry_interval_wan = "1s"')
            lines.append("retry_join_wan = [" + ", ".join(f'"{a}"' for a in self.join_wan) + "]")
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Start the agent (keeping its data folder) and wait until its HTTP API answers."""
        (self.workdir / "data").mkdir(exist_ok=True)
        (self.workdir / "agent.hcl").write_text(self.hcl())
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "agent", "-config-file", str(self.workdir / "agent.hcl")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.paused = False
        self.wait_api()

    def wait_api(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.api("GET", "/v1/agent/self")
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        raise TimeoutError(f"Consul agent {self.name} at {self.address} does not answer; see {self.log}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        self.resume()
        stop_process(self.proc, signal.SIGTERM)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: as if the host had lost power (no leave, nothing flushed)."""
        self.resume()
        super().kill()

    def pause(self) -> None:
        """SIGSTOP: the agent keeps its sockets but answers nothing, like a host frozen by the kernel."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.paused and self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def restart(self) -> None:
        self.kill()
        self.start()


class Cluster:
    """``servers`` Consul servers and ``clients`` client agents of one datacenter, joined over serf."""

    def __init__(self, workdir: Path, *, servers: int = 3, clients: int = 2, datacenter: str = "dc1") -> None:
        ips = loopback_addresses(servers + clients)
        self.datacenter = datacenter
        self.servers = [
            ClusterAgent(workdir / f"server{i + 1}", name=f"{datacenter}-server{i + 1}", ip=ip, server=True,
                         datacenter=datacenter)
            for i, ip in enumerate(ips[:servers])
        ]  # fmt: skip
        self.clients = [
            ClusterAgent(workdir / f"client{i + 1}", name=f"{datacenter}-host{i + 1}", ip=ip, server=False,
                         datacenter=datacenter)
            for i, ip in enumerate(ips[servers:])
        ]  # fmt: skip
        for agent in self.agents:
            agent.join = [s.serf_address for s in self.servers if s is not agent]
            agent.expect = servers

    @property
    def agents(self) -> list[ClusterAgent]:
        return [*self.servers, *self.clients]

    def start(self) -> Cluster:
        for agent in self.agents:
            agent.start()
        self.wait_healthy()
        return self

    def stop(self) -> None:
        for agent in self.agents:
            agent.stop()

    def live(self) -> list[ClusterAgent]:
        return [a for a in self.agents if a.running and not a.paused]

    def leader(self, timeout: float = 30.0) -> ClusterAgent:
        """The server that is leader now, as every live server agrees (waits for an election)."""
        deadline = time.monotonic() + timeout
        while True:
            views = {self._leader_seen_by(s) for s in self.servers if s.running and not s.paused}
            if len(views) == 1 and (address := views.pop()):
                for server in self.servers:
                    if server.rpc_address == address and server.running:
                        return server
            if time.monotonic() > deadline:
                raise TimeoutError(f"no agreed leader in {self.datacenter} after {timeout}s")
            time.sleep(0.05)

    @staticmethod
    def _leader_seen_by(server: ClusterAgent) -> str:
        try:
            return str(server.api("GET", "/v1/status/leader") or "")
        except (OSError, urllib.error.URLError):
            return ""

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Every agent running, one leader, and every node alive in the catalog with serfHealth passing."""
        deadline = time.monotonic() + timeout
        for agent in self.agents:
            if not agent.running:
                agent.start()
            agent.resume()
        self.leader(timeout)
        names = {a.name for a in self.agents}
        while time.monotonic() < deadline:
            if self.serf_passing(self.servers[0]) >= names:
                return
            time.sleep(0.1)
        raise TimeoutError(f"the cluster {self.datacenter} did not become healthy after {timeout}s")

    @staticmethod
    def serf_passing(via: ConsulAgent) -> set[str]:
        """Nodes whose serfHealth check passes, as the catalog says."""
        try:
            checks: list[dict[str, Any]] = via.api("GET", "/v1/health/state/any?stale")
        except (OSError, urllib.error.URLError):
            return set()
        return {c["Node"] for c in checks if c["CheckID"] == "serfHealth" and c["Status"] == "passing"}

    def clear(self) -> None:
        """Remove every service registered on the client agents, so tests sharing the cluster start clean."""
        for client in self.clients:
            client.clear()
