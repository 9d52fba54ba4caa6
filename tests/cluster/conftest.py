"""Fixtures of the cluster tests: one real Consul cluster (3 servers, 2 client agents) for the package."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import TELEMETRY, Cluster
from tests.support.consul_agent import ConsulAgent
from tests.support.nginx import NginxServer
from tests.support.sidecar import SidecarProcess, write_config


@pytest.fixture(scope="package")
def consul_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Started once for every test in tests/cluster (about 2 s); stopped at the end."""
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), servers=3, clients=2)
    for agent in cluster.agents:
        agent.extra_hcl = TELEMETRY  # the many-sidecars benchmark reads the servers' counters
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def cluster(consul_cluster: Cluster) -> Iterator[Cluster]:
    """The package's cluster, every agent running and joined, with no services on the client agents."""
    consul_cluster.wait_healthy()
    consul_cluster.clear()
    yield consul_cluster
    consul_cluster.wait_healthy()  # bring back what a test killed or paused, for the next one


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[NginxServer]:
    """nginx with backends b1..b4 and a front server proxying to the rendered upstream 'primes'."""
    server = NginxServer(tmp_path / "nginx")
    (server.conf_d / "upstreams.conf").write_text("upstream primes { server 127.0.0.1:1 down; }\n")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_sidecar() -> Iterator[Callable[..., SidecarProcess]]:
    """Start ``upstreams watch`` on a config; every process started is stopped at the end."""
    started: list[SidecarProcess] = []

    def start(config: Path, *args: str) -> SidecarProcess:
        started.append(SidecarProcess(config, *args))
        return started[-1]

    yield start
    for proc in started:
        proc.stop()


def sidecar_config(
    workdir: Path, agent: ConsulAgent, nginx: NginxServer, consul: str = "", **kwargs: Any
) -> Path:
    """A sidecar config for ``agent`` (its host's client agent), with extra ``[consul]`` lines."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir, agent, nginx, **kwargs)
    line = f'address = "{agent.address}"'
    config.write_text(config.read_text().replace(line, f"{line}\n{consul}"))
    return config
