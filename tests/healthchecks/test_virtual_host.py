"""nginx-proxy's VIRTUAL_HOST/VIRTUAL_PORT/VIRTUAL_PATH: mapped to service meta (pure), and a container
started with VIRTUAL_HOST on real Podman and Docker answering through nginx by that host name."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from healthchecks.engine import PortBinding
from healthchecks.labels import services_for
from tests.healthchecks.engines import EngineDaemon
from tests.healthchecks.test_labels import HOST, container
from tests.support.consul_agent import ConsulAgent
from tests.support.nginx import NginxServer
from tests.support.ports import free_port
from tests.support.sidecar import SidecarProcess, write_config
from tests.support.waiting import wait_until


def meta_of(
    env: dict[str, str] | None = None, labels: dict[str, str] | None = None, **kw: object
) -> list[dict[str, str]]:
    specs, _ = services_for(container(labels=labels, env=env, **kw), HOST)
    return [dict(spec.meta) for spec in specs]


def test_virtual_host_and_path_become_nginx_meta() -> None:
    assert meta_of(
        {"VIRTUAL_HOST": "App.Example.com, b.example.com,app.example.com", "VIRTUAL_PATH": "/api"}
    ) == [{"nginx-host": "app.example.com,b.example.com", "nginx-path": "/api"}]
    assert meta_of(labels={"VIRTUAL_HOST": "label.example.com"}, env={"VIRTUAL_HOST": "env.example.com"}) == [
        {"nginx-host": "label.example.com"}
    ]
    assert meta_of({}) == [{}]


def test_with_several_ports_virtual_port_or_80_is_the_site() -> None:
    ports = (PortBinding(80, "tcp", "0.0.0.0", 1080), PortBinding(9000, "tcp", "0.0.0.0", 1900))
    assert meta_of({"VIRTUAL_HOST": "a.example.com"}, ports=ports) == [{"nginx-host": "a.example.com"}, {}]
    assert meta_of({"VIRTUAL_HOST": "a.example.com", "VIRTUAL_PORT": "9000"}, ports=ports) == [
        {}, {"nginx-host": "a.example.com"}
    ]  # fmt: skip


def test_values_that_could_add_a_directive_are_dropped_with_a_warning() -> None:
    info = container(env={"VIRTUAL_HOST": "ok.example.com,x;y,a b", "VIRTUAL_PATH": "/ { return 200"})
    (spec,), warnings = services_for(info, HOST)
    assert dict(spec.meta) == {"nginx-host": "ok.example.com"}
    assert [w.split(": ", 1)[1] for w in warnings] == [
        "VIRTUAL_HOST 'x;y' is not a host name; skipped",
        "VIRTUAL_HOST 'a b' is not a host name; skipped",
        "VIRTUAL_PATH '/ { return 200' is not a plain URL path; using '/'",
    ]


SITES = """{% import "nginx.j2" as nginx %}
{{ nginx.sites(listen="127.0.0.1:LISTEN") }}
"""


def get(port: int, host: str, path: str = "/") -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except urllib.error.URLError:
        return 0, ""  # nothing listens yet: the sites are not rendered
    except ConnectionResetError:
        # nginx reloading (the companion and the sidecar each apply a round) may drop a connection it
        # had accepted; http.client.RemoteDisconnected is one of these. Not an answer: ask again.
        return 0, ""


@pytest.mark.slow
def test_container_with_virtual_host_is_reachable_through_nginx_by_host_name(
    tmp_path: Path, engine: EngineDaemon, consul: ConsulAgent, companion_factory: Callable[..., object]
) -> None:
    nginx = NginxServer(tmp_path / "nginx")
    (nginx.conf_d / "primes.conf").write_text("upstream primes { server 127.0.0.1:1 down; }\n")
    listen = free_port()
    config = write_config(tmp_path, consul, nginx, template=SITES.replace("LISTEN", str(listen)))
    nginx.start()
    companion_factory(engine).start()  # type: ignore[attr-defined]
    sidecar = SidecarProcess(config)
    try:
        engine.run("site", ports={"8080/tcp": free_port()}, environment={"VIRTUAL_HOST": "app.example.test"})
        wait_until(
            lambda: get(listen, "app.example.test") == (200, "hello"), 30, what="the site through nginx"
        )
        assert get(listen, "other.example.test")[0] == 404  # the default server: unknown hosts
    finally:
        sidecar.stop()
        nginx.stop()
