"""Hosts of one cluster: a host that dies, two companions side by side, two sidecars rendering alike."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import sidecar_config
from tests.cluster.load import Load
from tests.healthchecks.conftest import Companion, owned
from tests.support.cluster import Cluster, ClusterAgent
from tests.support.figures import record
from tests.support.nginx import NginxServer
from tests.support.sidecar import SidecarProcess
from tests.support.waiting import wait_until


@pytest.fixture
def companions(tmp_path: Path) -> Iterator[Callable[..., Companion]]:
    """Companions on given hosts, registering the service files of their own folder; killed at the end."""
    made: list[Companion] = []

    def make(host: ClusterAgent, hostname: str, files: dict[str, int]) -> Companion:
        folder = tmp_path / hostname
        (folder / "services").mkdir(parents=True)
        for sid, port in files.items():
            (folder / "services" / f"{sid}.toml").write_text(f'name = "prime"\nid = "{sid}"\nport = {port}\n')
        made.append(
            Companion(
                folder, host, None, hostname=hostname, services_dir=str(folder / "services"), resync="1s"
            )
        )
        return made[-1].start()

    yield make
    for companion in made:
        companion.kill()


@pytest.mark.slow
def test_dead_host_leaves_nginx_on_the_other_host_and_its_companion_restores_it_on_return(
    tmp_path: Path,
    cluster: Cluster,
    nginx: NginxServer,
    start_sidecar: Callable[..., SidecarProcess],
    companions: Callable[..., Companion],
) -> None:
    balancer, host = cluster.clients
    balancer.register("prime", "b3", nginx.backends["b3"])  # an instance beside nginx, on the host that stays
    files = {"b1": nginx.backends["b1"], "b2": nginx.backends["b2"]}
    companion = companions(host, "host-b", files)
    start_sidecar(sidecar_config(tmp_path / "sidecar", balancer, nginx))
    wait_until(lambda: nginx.answers() == {"b1", "b2", "b3"}, timeout=20, what="three backends serving")
    with Load(nginx) as load:
        # The host loses power: its agent and its companion die at once; nobody deregisters anything.
        companion.kill()
        host.kill()
        wait_until(lambda: nginx.answers() == {"b3"}, timeout=30, what="the dead host's instances gone")
        assert host.name not in cluster.serf_passing(balancer)
        # It comes back as a fresh machine: an empty agent, then the companion at boot.
        shutil.rmtree(host.workdir / "data")
        host.start()
        companion.start()
        wait_until(lambda: set(owned(host, "host-b")) == {"b1", "b2"}, timeout=20, what="re-registered")
        wait_until(
            lambda: nginx.answers() == {"b1", "b2", "b3"}, timeout=30, what="the host's instances back"
        )
    record("host died and came back", faults=1, requests=load.sent, failed=load.failed)
    assert load.failed == 0, load.failures[:5]
