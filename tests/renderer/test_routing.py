"""End to end: Consul health changes -> rendered upstream -> nginx routes accordingly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.renderer.conftest import register_backend
from tests.support.consul_agent import ConsulAgent
from tests.support.nginx import NginxServer
from tests.support.sidecar import SidecarProcess, write_config
from tests.support.waiting import wait_until


def test_nginx_routes_to_exactly_the_healthy_instances(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    for name in ("b1", "b2", "b3"):
        register_backend(consul, nginx, name)
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx))
    wait_until(lambda: nginx.answers() == {"b1", "b2", "b3"}, what="three backends in rotation")

    consul.set_ttl("b2", "critical")
    wait_until(lambda: nginx.answers() == {"b1", "b3"}, what="b2 out of rotation")

    consul.set_ttl("b2", "passing")
    register_backend(consul, nginx, "b4")
    wait_until(lambda: nginx.answers(16) == {"b1", "b2", "b3", "b4"}, what="b2 back and b4 joined")

    consul.deregister("b1")
    wait_until(lambda: nginx.answers() == {"b2", "b3", "b4"}, what="b1 gone")
    assert sidecar.proc.poll() is None, sidecar.output()
