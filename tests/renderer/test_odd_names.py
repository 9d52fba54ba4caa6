"""End to end: service names Consul accepts but nginx or Consul's own HTTP API cannot use never stop
the other upstreams from following Consul, in ``watch`` and in ``render`` (real Consul and nginx)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from discovery.model import CatalogQuery, Instance, KeyQuery, ServiceQuery, ServiceSummary, Snapshot
from tests.renderer.test_examples import SOURCES, nginx_accepts, render_complete
from tests.support.consul_agent import ConsulAgent
from tests.support.nginx import NginxServer
from tests.support.sidecar import UPSTREAMS, SidecarProcess, write_config
from tests.support.waiting import wait_until

# The loop the docs and examples use; the front server proxies to the upstream 'primes'.
LOOP = """{% import "nginx.j2" as nginx %}
{% for s in services() %}
{{ nginx.upstream(s.name, service(s.name)) }}
{% endfor %}
"""
# The library's own loop over every service, run in Python with its cached blocks (block_loop.py).
PY_LOOP = '{% import "nginx.j2" as nginx %}\n{{ nginx.upstreams() }}\n'
LOOPS = pytest.mark.parametrize("template", [LOOP, PY_LOOP], ids=["jinja_loop", "nginx_upstreams"])
NOT_NGINX_NAMES = ["..", "e v i l", "a/b", "evil?index=1&wait=1s", "evil#frag", "ev\u202eil"]
ODD = [*NOT_NGINX_NAMES, "x" * 300, "api.v2", "a/../b", "API", "api"]


def register(consul: ConsulAgent, nginx: NginxServer) -> None:
    for backend in ("b1", "b2"):
        consul.register_ttl("primes", backend, nginx.backends[backend])
    for i, name in enumerate(ODD):
        consul.register_ttl(name, f"odd-{i}", nginx.backends["b3"])


def check_rendered(text: str, nginx: NginxServer, log: str) -> None:
    """The odd names nginx can use have their own upstream; the others are skipped, each named once."""
    b3 = f"server 127.0.0.1:{nginx.backends['b3']};"
    assert re.search(r"upstream api\.v2 \{\n\s+" + re.escape(b3), text), text
    assert re.search(r"upstream x{300} \{\n\s+" + re.escape(b3), text), text
    for name in NOT_NGINX_NAMES:
        assert log.count(f"Skipped upstream {name!r}: nginx takes only") == 1, name
    assert log.count("Skipped upstream 'api': nginx already has it as 'API'") == 1
    assert "Service '..' reads as no instances" in log
    assert "Service 'a/../b' reads as no instances" in log


def odd_catalog(deps: frozenset[object]) -> Snapshot:
    def instances(name: str) -> tuple[Instance, ...]:
        return (Instance(node="n1", id=f"{name}-1", name=name, address="127.0.0.1", port=8080),)

    names = [*ODD, "prime"]
    return Snapshot.build(
        {d: instances(d.name) for d in deps if isinstance(d, ServiceQuery)},
        {
            d: tuple(ServiceSummary(n, ("public",)) for n in names)
            for d in deps
            if isinstance(d, CatalogQuery)
        },
        {d: None for d in deps if isinstance(d, KeyQuery)},
    )


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_example_passes_nginx_check_with_odd_names_in_the_catalog(tmp_path: Path, source: Path) -> None:
    text = render_complete(source, odd_catalog)
    result = nginx_accepts(tmp_path, text)
    assert result.returncode == 0, result.stderr + text


@pytest.mark.slow
@LOOPS
def test_watch_follows_health_beside_every_odd_name(
    tmp_path: Path,
    consul: ConsulAgent,
    nginx: NginxServer,
    start_sidecar: Callable[..., SidecarProcess],
    template: str,
) -> None:
    register(consul, nginx)
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx, template=template))
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="primes served beside the odd names")
    dest = nginx.conf_d / "upstreams.conf"
    check_rendered(dest.read_text(), nginx, sidecar.output())

    consul.set_ttl("b2", "critical")
    wait_until(lambda: nginx.answers() == {"b1"}, what="the health flip reaching nginx")
    consul.set_ttl(f"odd-{ODD.index('api.v2')}", "critical")  # api.v2 follows its own health too
    wait_until(lambda: "upstream api.v2 {\n    # no healthy" in dest.read_text(), what="api.v2 emptied")
    assert sidecar.output().count("Skipped upstream 'e v i l'") == 1
    assert sidecar.proc.poll() is None


def render_once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [UPSTREAMS, "render", "--config", str(config)], capture_output=True, text=True, timeout=30
    )


@pytest.mark.slow
@LOOPS
def test_render_applies_beside_every_odd_name_and_follows_a_flip(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, template: str
) -> None:
    register(consul, nginx)
    config = write_config(tmp_path, consul, nginx, template=template)
    out = render_once(config)
    assert out.returncode == 0, out.stderr
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="primes served beside the odd names")
    check_rendered((nginx.conf_d / "upstreams.conf").read_text(), nginx, out.stderr)

    consul.set_ttl("b1", "critical")
    out = render_once(config)
    assert out.returncode == 0, out.stderr
    wait_until(lambda: nginx.answers() == {"b2"}, what="the health flip applied by the next render")
