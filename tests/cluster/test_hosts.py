"""Hosts of one cluster: a host that dies, two companions side by side, two sidecars rendering alike."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import sidecar_config
from tests.healthchecks.conftest import Companion, owned
from tests.healthchecks.engines import EngineDaemon, build_image_tar
from tests.support.cluster import Cluster, ClusterAgent
from tests.support.figures import record
from tests.support.load import Load
from tests.support.nginx import NginxServer
from tests.support.ports import free_port
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
    record("cluster: host died and came back", faults=1, requests=load.sent, failed=load.failed)
    assert load.failed == 0, load.failures[:5]


@pytest.mark.slow
def test_two_companions_own_only_their_registrations_and_a_removal_on_one_leaves_the_other_alone(
    tmp_path: Path,
    cluster: Cluster,
    nginx: NginxServer,
    start_sidecar: Callable[..., SidecarProcess],
    companions: Callable[..., Companion],
) -> None:
    host_a, host_b = cluster.clients
    # The same service file name ("web") on both hosts: two services, one per owner.
    files = {
        "a": {"web": nginx.backends["b1"], "a-only": nginx.backends["b3"]},
        "b": {"web": nginx.backends["b2"]},
    }
    for hostname in ("a", "b"):
        folder = tmp_path / hostname / "services"
        folder.mkdir(parents=True)
        for stem, port in files[hostname].items():
            (folder / f"{stem}.toml").write_text(f'name = "prime"\nport = {port}\n')
    comp_a = Companion(
        tmp_path / "a", host_a, None, hostname="a", services_dir=str(tmp_path / "a" / "services"), resync="1s"
    )
    comp_b = Companion(
        tmp_path / "b", host_b, None, hostname="b", services_dir=str(tmp_path / "b" / "services"), resync="1s"
    )
    try:
        comp_a.start()
        comp_b.start()
        start_sidecar(sidecar_config(tmp_path / "sidecar", host_a, nginx))
        wait_until(lambda: nginx.answers() == {"b1", "b2", "b3"}, timeout=20, what="both hosts' services")
        assert set(owned(host_a, "a")) == {"a:file:web", "a:file:a-only"}
        assert set(owned(host_b, "b")) == {"b:file:web"}
        (tmp_path / "a" / "services" / "web.toml").unlink()  # host a's web goes; b's web must stay
        wait_until(lambda: nginx.answers() == {"b2", "b3"}, timeout=20, what="only a's web gone")
        wait_until(lambda: "Reconciled" in comp_b.output().split("a:file:web")[-1], what="b reconciled since")
        assert set(owned(host_b, "b")) == {"b:file:web"}
        assert comp_a.alive() and comp_b.alive()
    finally:
        comp_a.kill()
        comp_b.kill()


@pytest.fixture
def nginx_b(tmp_path: Path) -> Iterator[NginxServer]:
    """A second host's nginx (its own prefix and ports)."""
    server = NginxServer(tmp_path / "nginx-b")
    (server.conf_d / "upstreams.conf").write_text("upstream primes { server 127.0.0.1:1 down; }\n")
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
def test_two_sidecars_on_two_hosts_converge_to_byte_identical_files_after_every_change(
    tmp_path: Path,
    cluster: Cluster,
    nginx: NginxServer,
    nginx_b: NginxServer,
    start_sidecar: Callable[..., SidecarProcess],
) -> None:
    host_a, host_b = cluster.clients
    ports = nginx.backends
    for name, host in (("b1", host_a), ("b2", host_b), ("b3", host_b)):
        host.register_ttl("prime", name, ports[name], Tags=[name])
    template = (
        '{% import "nginx.j2" as nginx %}\n'
        '{{ nginx.upstream("primes", service("prime", passing=false), backup_warning=true) }}\n'
        "{{ nginx.upstreams(prefix='tag_') }}\n"
    )
    start_sidecar(sidecar_config(tmp_path / "a", host_a, nginx, template=template))
    start_sidecar(sidecar_config(tmp_path / "b", host_b, nginx_b, template=template))
    files = (nginx.conf_d / "upstreams.conf", nginx_b.conf_d / "upstreams.conf")
    changes = [
        lambda: host_b.set_ttl("b2", "warning"),
        lambda: host_b.set_ttl("b3", "critical"),
        lambda: host_a.register_ttl("prime", "b4", ports["b4"], Tags=["b4"]),
        lambda: host_b.deregister("b2"),
        lambda: host_b.set_ttl("b3", "passing"),
    ]
    seen = set()
    for step, change in enumerate([lambda: None, *changes]):
        change()
        hosts = (("b1", host_a), ("b2", host_b), ("b3", host_b), ("b4", host_a))
        expected = {_live(h, n) for n, h in hosts} - {""}
        wait_until(
            lambda e=expected: (
                files[0].read_bytes() == files[1].read_bytes() and _rendered(files[0], ports) == e
            ),
            timeout=20,
            what=f"both files equal after change {step}",
        )
        seen.add(files[0].read_bytes())
    assert len(seen) == len(changes) + 1  # every change reached both files


def _live(host: ClusterAgent, sid: str) -> str:
    """``sid``, ``sid backup`` (warning) or "" (critical or gone), as its agent says."""
    checks = host.api("GET", "/v1/agent/checks").values()
    status = next((c["Status"] for c in checks if c["ServiceID"] == sid), "gone")
    return {"passing": sid, "warning": f"{sid} backup"}.get(status, "")


def _rendered(path: Path, ports: dict[str, int]) -> set[str]:
    """The servers of upstream 'primes' in a rendered file, as ``_live`` names them."""
    by_port = {str(port): name for name, port in ports.items()}
    upstream = path.read_text().split("upstream primes {", 1)[1].split("}", 1)[0]
    found = set()
    for line in upstream.splitlines():
        words = line.split()
        port = words[1].rstrip(";").rsplit(":", 1)[1] if words[:1] == ["server"] else ""
        if port in by_port:  # not the "server 127.0.0.1:1 down" of an empty upstream
            found.add(by_port[port] + (" backup" if "backup;" in words else ""))
    return found


@pytest.fixture(scope="module")
def two_engines() -> Iterator[tuple[EngineDaemon, EngineDaemon]]:
    """Two Podman engines with their own storage: two hosts' containers, names may repeat."""
    root = Path(tempfile.mkdtemp(prefix="upc-", dir="/tmp"))  # unix socket paths are short
    tar = build_image_tar(root)
    for name in ("a", "b"):
        (root / name).mkdir()
    engines = tuple(EngineDaemon("podman", root / name, tar) for name in ("a", "b"))
    try:
        for engine in engines:
            engine.start()
            engine.load_image()
        yield engines  # type: ignore[misc]
    finally:
        for engine in engines:
            engine.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_the_same_container_name_on_two_hosts_gives_two_services_that_both_reach_nginx(
    tmp_path: Path,
    cluster: Cluster,
    nginx: NginxServer,
    start_sidecar: Callable[..., SidecarProcess],
    two_engines: tuple[EngineDaemon, EngineDaemon],
) -> None:
    made = []
    try:
        for host, engine, body in zip(cluster.clients, two_engines, ("from-a", "from-b"), strict=True):
            serve = f"echo {body} > /www/index.html && exec httpd -f -p 8080 -h /www"
            engine.run("web", labels={"SERVICE_NAME": "prime"}, ports={"8080/tcp": free_port()},
                       command=["sh", "-c", serve])  # fmt: skip
            folder = tmp_path / f"companion-{body}"
            folder.mkdir()
            made.append(Companion(folder, host, engine, hostname=body, resync="1s").start())
        start_sidecar(sidecar_config(tmp_path / "sidecar", cluster.clients[0], nginx))
        wait_until(lambda: nginx.answers() == {"from-a", "from-b"}, timeout=30, what="both containers")
        assert set(owned(cluster.clients[0], "from-a")) == {"from-a:web:8080"}
        assert set(owned(cluster.clients[1], "from-b")) == {"from-b:web:8080"}
    finally:
        for companion in made:
            companion.kill()
        for engine in two_engines:
            engine.remove_all()
