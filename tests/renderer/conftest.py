"""Fixtures for the sidecar: a real nginx with four named backends, and the sidecar process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.consul_agent import ConsulAgent
from tests.support.nginx import NginxServer
from tests.support.sidecar import SidecarProcess, write_config


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[NginxServer]:
    """nginx with backends b1..b4 and a front server proxying to the rendered upstream 'primes'."""
    server = NginxServer(tmp_path / "nginx")
    # nginx refuses an undefined upstream: start with the block an empty service renders.
    (server.conf_d / "upstreams.conf").write_text("upstream primes { server 127.0.0.1:1 down; }\n")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_sidecar(tmp_path: Path) -> Iterator[Callable[..., SidecarProcess]]:
    """Start ``upstreams watch`` on a config; every process started is stopped at the end."""
    started: list[SidecarProcess] = []

    def start(config: Path, *args: str, **kwargs: object) -> SidecarProcess:
        proc = SidecarProcess(config, *args, **kwargs)  # type: ignore[arg-type]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def register_backend(consul: ConsulAgent, nginx: NginxServer, name: str, status: str = "passing") -> None:
    """Register backend ``name`` (b1..b4) as an instance of service 'prime' with a TTL check."""
    consul.register_ttl("prime", name, nginx.backends[name], status=status)


__all__ = ["register_backend", "write_config"]
