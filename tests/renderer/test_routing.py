"""End to end: Consul health changes -> rendered upstream -> nginx routes accordingly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.renderer.conftest import register_backend
from tests.support.consul_agent import ConsulAgent
from tests.support.nginx import NginxServer
from tests.support.nginx_tokens import directives
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


def test_warning_instance_becomes_backup_and_maintenance_leaves_rotation(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(consul, nginx, "b1")
    register_backend(consul, nginx, "b2", status="warning")
    register_backend(consul, nginx, "b3")
    start_sidecar(write_config(tmp_path, consul, nginx))
    rendered = nginx.conf_d / "upstreams.conf"
    wait_until(lambda: "backup" in rendered.read_text(), what="b2 rendered as backup")
    # A backup gets no traffic while the primaries are up.
    wait_until(lambda: nginx.answers() == {"b1", "b3"}, what="only the passing instances serving")

    consul.api("PUT", "/v1/agent/service/maintenance/b3?enable=true&reason=test")
    wait_until(lambda: nginx.answers() == {"b1"}, what="b3 in maintenance out of rotation")
    consul.api("PUT", "/v1/agent/service/maintenance/b3?enable=false")
    wait_until(lambda: nginx.answers() == {"b1", "b3"}, what="b3 back from maintenance")


def test_empty_service_renders_a_valid_upstream_that_answers_502(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(consul, nginx, "b1")
    start_sidecar(write_config(tmp_path, consul, nginx))
    wait_until(lambda: nginx.answers() == {"b1"}, what="b1 serving")
    consul.set_ttl("b1", "critical")
    wait_until(lambda: nginx.answers() == {"502"}, what="an immediate 502 with no healthy instance")
    assert "server 127.0.0.1:1 down;" in (nginx.conf_d / "upstreams.conf").read_text()


def test_unchanged_catalog_does_not_reload(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(consul, nginx, "b1")
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx))
    wait_until(lambda: nginx.answers() == {"b1"}, what="b1 serving")
    wait_until(lambda: "nginx reloaded" in sidecar.output(), what="the first reload logged")
    reloads = nginx.reloads()
    # Changes that do not alter the output: another service, a TTL heartbeat, a re-registration.
    consul.register_ttl("unrelated", "u1", 9999)
    consul.api("PUT", "/v1/agent/check/pass/ttl:b1?note=still+fine")
    register_backend(consul, nginx, "b1")
    consul.register_ttl("prime", "b9", 1, status="critical")  # critical: not rendered
    # A later change that does alter it proves the earlier ones were seen and judged unchanged.
    register_backend(consul, nginx, "b2")
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="b2 joined")
    assert nginx.reloads() == reloads + 1, sidecar.output()


def test_burst_of_changes_with_wait_gives_few_reloads(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    for name in ("b1", "b2"):
        register_backend(consul, nginx, name)
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx, wait=("500ms", "2s")))
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="both serving")
    wait_until(lambda: "nginx reloaded" in sidecar.output(), what="the first reload logged")
    reloads = nginx.reloads()
    for i in range(50):
        consul.set_ttl("b2", "critical" if i % 2 == 0 else "passing")
    consul.set_ttl("b2", "critical")
    wait_until(lambda: nginx.answers() == {"b1"}, what="the final state: b2 out")
    # 51 flips inside about one wait.max window: at most a couple of reloads, not dozens.
    assert nginx.reloads() - reloads <= 3, nginx.reloads() - reloads


def test_hostile_service_data_never_reaches_the_output(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    template = """{% import "nginx.j2" as nginx %}
{{ nginx.upstream("primes", service("prime")) }}
{% for i in service("prime") %}
# {{ i.id }} tags={{ i.tags | join(",") }} meta={{ i.meta.get("note", "") }}
{% endfor %}
"""
    register_backend(consul, nginx, "b1")
    consul.register_ttl("prime", "evil-address", 8080, address="1.2.3.4; include /etc/passwd", Tags=["x"])
    consul.register_ttl(
        "prime",
        "b2",
        nginx.backends["b2"],
        Tags=["a}b", "c;\ninclude /etc/passwd;", "d#e", "f$host"],
        Meta={"note": '"quoted" {brace} $var\nnext'},
    )
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx, template=template))
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="the two valid instances serving")
    text = (nginx.conf_d / "upstreams.conf").read_text()
    assert "1.2.3.4" not in text
    assert "$" not in text  # nginx would expand a variable even inside quotes
    # Only the directives the template wrote: the data added none, and every comment stayed one line.
    assert set(directives(text)) == {"upstream", "server"}, text
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert all(line.startswith(("upstream", "server", "}", "#")) for line in lines), text
    assert "evil-address" in sidecar.output() and "not an IP address or host name" in sidecar.output()
