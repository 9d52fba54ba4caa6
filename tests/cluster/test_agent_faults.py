"""The sidecar's own client agent paused or restarted: the last good config stays, then it resyncs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cluster.conftest import sidecar_config
from tests.cluster.load import Renders
from tests.support.cluster import Cluster
from tests.support.fault_proxy import EMPTY_SERVICES, ERROR_500, PASS, FaultProxy
from tests.support.figures import record
from tests.support.load import Load
from tests.support.nginx import NginxServer
from tests.support.sidecar import SidecarProcess
from tests.support.waiting import wait_until

# Long enough for serf to declare the frozen node failed (the harness' gossip is fast). A 30 s pause
# behaves the same (run by hand: no error logged, the change applied the moment it resumed); 6 s keeps
# the suite short.
PAUSE = 6.0


def _start(
    tmp_path: Path, cluster: Cluster, nginx: NginxServer, start: Callable[..., SidecarProcess]
) -> SidecarProcess:
    balancer, backends = cluster.clients
    # The instances live on the other host: what the sidecar's host goes through takes none away.
    for name in ("b1", "b2", "b3"):
        backends.register_ttl("prime", name, nginx.backends[name])
    sidecar = start(sidecar_config(tmp_path / "sidecar", balancer, nginx))
    wait_until(lambda: nginx.answers() == {"b1", "b2", "b3"}, timeout=20, what="three backends serving")
    return sidecar


def _partial(renders: Renders, nginx: NginxServer, names: tuple[str, ...]) -> list[bytes]:
    ports = [f":{nginx.backends[n]};".encode() for n in names]
    return [data for _, data in renders.seen if not all(p in data for p in ports)]


@pytest.mark.slow
def test_paused_agent_keeps_the_last_good_config_and_the_change_made_meanwhile_arrives_after(
    tmp_path: Path, cluster: Cluster, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    sidecar = _start(tmp_path, cluster, nginx, start_sidecar)
    balancer, backends = cluster.clients
    dest = nginx.conf_d / "upstreams.conf"
    good = dest.read_bytes()
    with Load(nginx) as load, Renders(dest) as renders:
        balancer.pause()
        backends.set_ttl("b3", "critical")  # a change the paused agent cannot pass on
        wait_until(lambda: balancer.name not in cluster.serf_passing(backends), what="the frozen node failed")
        time.sleep(max(0.0, PAUSE - 2.0))
        assert dest.read_bytes() == good
        balancer.resume()
        wait_until(lambda: nginx.answers() == {"b1", "b2"}, timeout=30, what="the change applied after")
    record("cluster: sidecar's agent paused", faults=1, requests=load.sent, failed=load.failed)
    assert load.failed == 0, load.failures[:5]
    assert _partial(renders, nginx, ("b1", "b2")) == []
    assert sidecar.proc.poll() is None


@pytest.mark.slow
def test_restarted_agent_keeps_the_last_good_config_while_down_and_resyncs_when_back(
    tmp_path: Path, cluster: Cluster, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    sidecar = _start(tmp_path, cluster, nginx, start_sidecar)
    balancer, backends = cluster.clients
    dest = nginx.conf_d / "upstreams.conf"
    good, reloads = dest.read_bytes(), nginx.reloads()
    with Load(nginx) as load, Renders(dest) as renders:
        balancer.kill()  # a crash or an upgrade: no leave, so the catalog keeps everything
        backends.set_ttl("b3", "critical")
        wait_until(lambda: "Lost Consul" in sidecar.output(), what="the sidecar to notice")
        assert dest.read_bytes() == good and nginx.reloads() == reloads
        balancer.start()
        wait_until(lambda: nginx.answers() == {"b1", "b2"}, timeout=30, what="the change applied after")
    record("cluster: sidecar's agent restarted", faults=1, requests=load.sent, failed=load.failed)
    assert load.failed == 0, load.failures[:5]
    assert _partial(renders, nginx, ("b1", "b2")) == []
    assert sidecar.proc.poll() is None


@pytest.mark.slow
def test_an_agent_back_with_every_service_empty_for_a_moment_is_not_rendered_before_it_settles(
    tmp_path: Path, cluster: Cluster, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    # A real agent cannot be made to answer half-empty on demand (anti-entropy wins the race here):
    # a proxy in front of the sidecar's agent does, between "back" and the resync that follows.
    balancer, backends = cluster.clients
    for name in ("b1", "b2", "b3"):
        backends.register_ttl("prime", name, nginx.backends[name])
    proxy = FaultProxy(balancer.http_port, balancer.ip).start()
    try:
        config = sidecar_config(tmp_path / "sidecar", balancer, nginx)
        via = f'address = "http://127.0.0.1:{proxy.port}"\nblock_query_wait = "1s"\ntimeout = "1s"'
        config.write_text(config.read_text().replace(f'address = "{balancer.address}"', via))
        sidecar = start_sidecar(config)
        wait_until(lambda: nginx.answers() == {"b1", "b2", "b3"}, timeout=20, what="three backends serving")
        dest = nginx.conf_d / "upstreams.conf"
        with Load(nginx) as load, Renders(dest) as renders:
            proxy.set_mode(ERROR_500)
            wait_until(lambda: "Lost Consul" in sidecar.output(), what="the sidecar to notice")
            proxy.set_mode(EMPTY_SERVICES)  # back, but every service without instances
            wait_until(lambda: proxy.emptied > 0, what="a service read answered empty")
            proxy.set_mode(PASS)  # the connections dropped: the sidecar reads everything again
            backends.set_ttl("b3", "critical")
            wait_until(lambda: nginx.answers() == {"b1", "b2"}, timeout=30, what="the change applied after")
    finally:
        proxy.stop()
    record("cluster: agent back half-empty", faults=2, requests=load.sent, failed=load.failed)
    assert load.failed == 0, load.failures[:5]
    assert _partial(renders, nginx, ("b1", "b2")) == []
    assert sidecar.proc.poll() is None
