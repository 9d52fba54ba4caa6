"""The leader killed while instances flip and traffic flows through nginx."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cluster.conftest import sidecar_config
from tests.cluster.load import Flipper, Renders
from tests.support.cluster import Cluster
from tests.support.figures import note, record
from tests.support.load import Load
from tests.support.nginx import NginxServer
from tests.support.sidecar import SidecarProcess
from tests.support.waiting import wait_until


@pytest.mark.slow
@pytest.mark.parametrize("max_stale", ["", "10s"], ids=["consistent", "max_stale"])
def test_leader_killed_under_load_fails_no_request_renders_nothing_partial_and_follows_the_new_leader(
    tmp_path: Path,
    cluster: Cluster,
    nginx: NginxServer,
    start_sidecar: Callable[..., SidecarProcess],
    max_stale: str,
) -> None:
    balancer, backends = cluster.clients  # one host runs nginx and the sidecar, the other the instances
    for name in ("b1", "b2", "b3"):
        backends.register_ttl("prime", name, nginx.backends[name])
    stale = f'max_stale = "{max_stale}"' if max_stale else ""
    sidecar = start_sidecar(sidecar_config(tmp_path / "sidecar", balancer, nginx, stale))
    wait_until(lambda: nginx.answers() == {"b1", "b2", "b3"}, timeout=20, what="three backends serving")
    dest = nginx.conf_d / "upstreams.conf"
    with Load(nginx) as load, Renders(dest) as renders:
        with Flipper(backends, "b3") as flips:
            wait_until(lambda: len(renders.seen) > 3, what="flips rendered under the first leader")
            killed_at = time.monotonic()
            cluster.leader().kill()
            cluster.leader()  # a new one, agreed by both survivors
            elected_at = time.monotonic()
            wait_until(
                lambda: any(t > elected_at + 0.5 for t, _ in renders.seen),
                timeout=30,
                what="a flip rendered under the new leader",
            )
        wait_until(lambda: nginx.answers() == {"b1", "b2", "b3"}, timeout=30, what="the last state applied")
        converged_at = time.monotonic()
    gap = renders.longest_gap(killed_at - 1.0, converged_at)
    steady = [f":{nginx.backends[n]};".encode() for n in ("b1", "b2")]
    partial = [data for _, data in renders.seen if not all(port in data for port in steady)]
    label = f"cluster: leader killed ({'max_stale ' + max_stale if max_stale else 'consistent'})"
    record(label, faults=1, requests=load.sent, failed=load.failed)
    note(f"{label}: election {elected_at - killed_at:.1f} s, longest time without a render {gap:.1f} s")
    assert flips.flips > 5 and load.sent > 100
    assert load.failed == 0, load.failures[:5]
    assert partial == [], partial[:1]
    assert sidecar.proc.poll() is None
