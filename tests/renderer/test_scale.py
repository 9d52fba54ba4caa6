"""Kind to Consul at scale: connections do not grow with the number of watched services."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.support.consul_agent import ConsulAgent
from tests.support.nginx import NginxServer
from tests.support.sidecar import SidecarProcess, write_config
from tests.support.sockets import connections_to
from tests.support.waiting import wait_until

SERVICES = 300

ONE_UPSTREAM_PER_SERVICE = """{% import "nginx.j2" as nginx %}
{{ nginx.upstreams(tag="scale", prefix="s_") }}
upstream primes { server 127.0.0.1:1 down; }
"""


def test_connections_to_consul_stay_bounded_with_hundreds_of_watched_services(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    port = nginx.backends["b1"]
    for i in range(SERVICES):
        consul.register_ttl(f"svc{i:03d}", f"svc{i:03d}-1", port, Tags=["scale"])
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx, template=ONE_UPSTREAM_PER_SERVICE))
    dest = nginx.conf_d / "upstreams.conf"
    wait_until(
        lambda: dest.read_text().count("upstream s_svc") == SERVICES, timeout=60, what="every upstream"
    )

    # Churn across many services while sampling the sidecar's connections to Consul.
    peak = 0
    for i in range(0, SERVICES, 10):
        consul.set_ttl(f"svc{i:03d}-1", "critical")
        peak = max(peak, connections_to(sidecar.proc.pid, consul.http_port))
    wait_until(lambda: dest.read_text().count("down;") >= SERVICES // 10, what="the flips rendered")
    time.sleep(0.2)
    peak = max(peak, connections_to(sidecar.proc.pid, consul.http_port))
    assert 2 <= peak <= 8, peak
