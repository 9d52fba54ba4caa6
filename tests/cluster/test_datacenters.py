"""Two real datacenters joined over WAN on loopback: a remote one lost affects only its own upstreams."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import sidecar_config
from tests.support.cluster import Cluster
from tests.support.figures import record
from tests.support.http import get
from tests.support.nginx import NginxServer
from tests.support.ports import free_port
from tests.support.sidecar import SidecarProcess
from tests.support.waiting import wait_until

TEMPLATE = """{% import "nginx.j2" as nginx %}
{{ nginx.upstream("primes", service("prime")) }}
{{ nginx.upstream("remote", service("prime@dc2")) }}
"""


@pytest.fixture(scope="module")
def dc2(consul_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A second datacenter (one server) joined over WAN to the package's cluster."""
    remote = Cluster(tmp_path_factory.mktemp("dc2"), servers=1, clients=0, datacenter="dc2")
    remote.servers[0].join_wan = [f"{s.ip}:{s.serf_wan}" for s in consul_cluster.servers]
    try:
        remote.start()
        via = consul_cluster.clients[0]
        wait_until(lambda: "dc2" in via.api("GET", "/v1/catalog/datacenters"), what="dc2 over WAN")
        yield remote
    finally:
        remote.stop()


def _upstream(path: Path, name: str) -> str:
    return path.read_text().split(f"upstream {name} {{", 1)[1].split("}", 1)[0]


@pytest.mark.slow
def test_a_remote_datacenter_lost_keeps_its_upstreams_and_local_changes_still_reach_nginx(
    tmp_path: Path,
    cluster: Cluster,
    dc2: Cluster,
    nginx: NginxServer,
    start_sidecar: Callable[..., SidecarProcess],
) -> None:
    balancer, backends = cluster.clients
    remote = dc2.servers[0]
    for name in ("b1", "b2"):
        backends.register_ttl("prime", name, nginx.backends[name])
    remote.register_ttl("prime", "b3", nginx.backends["b3"])
    status = f"127.0.0.1:{free_port()}"
    sidecar = start_sidecar(sidecar_config(tmp_path / "a", balancer, nginx, template=TEMPLATE, status=status))
    dest = nginx.conf_d / "upstreams.conf"
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, timeout=20, what="local backends serving")
    remote_block = _upstream(dest, "remote")
    assert f":{nginx.backends['b3']};" in remote_block

    remote.kill()
    wait_until(lambda: "Datacenter dc2 is unreachable" in sidecar.output(), what="dc2 reported away")
    backends.set_ttl("b2", "critical")  # a local change while dc2 is away
    wait_until(lambda: nginx.answers() == {"b1"}, timeout=20, what="the local flip applied")
    assert _upstream(dest, "remote") == remote_block  # dc2's upstream keeps its last good instances
    code, body = get(f"http://{status}/health")
    assert code == 200 and "Datacenter dc2" in json.loads(body)["reason"]
    away = json.loads(get(f"http://{status}/status")[1])["datacenters_away"]
    assert set(away) == {"dc2"} and away["dc2"]["since"]
    assert "Lost Consul" not in sidecar.output()  # "Consul away" is the local agent only

    remote.start()
    remote.wait_leader()
    wait_until(lambda: "Datacenter dc2 is reachable again" in sidecar.output(), timeout=30, what="dc2 back")
    remote.set_ttl("b3", "critical")
    wait_until(
        lambda: f":{nginx.backends['b3']};" not in _upstream(dest, "remote"), what="dc2 followed again"
    )
    record("cluster: remote datacenter lost", faults=1, requests=0, failed=0)


@pytest.mark.slow
def test_first_render_with_a_remote_datacenter_away_waits_a_bound_then_renders_it_empty(
    tmp_path: Path,
    cluster: Cluster,
    dc2: Cluster,
    nginx: NginxServer,
    start_sidecar: Callable[..., SidecarProcess],
) -> None:
    balancer, backends = cluster.clients
    backends.register_ttl("prime", "b1", nginx.backends["b1"])
    dc2.servers[0].kill()
    try:
        sidecar = start_sidecar(sidecar_config(tmp_path / "a", balancer, nginx, template=TEMPLATE))
        dest = nginx.conf_d / "upstreams.conf"
        wait_until(lambda: nginx.answers() == {"b1"}, timeout=30, what="the first render, dc2 still away")
        assert "server 127.0.0.1:1 down;" in _upstream(dest, "remote")  # answers 502 until dc2 answers
        assert "rendering prime@dc2 with no instances" in sidecar.output()
        assert "Lost Consul" not in sidecar.output()
    finally:
        dc2.servers[0].start()
    record("cluster: first render, remote dc away", faults=1, requests=0, failed=0)
