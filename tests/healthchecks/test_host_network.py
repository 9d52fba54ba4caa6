"""Containers on the host network, on each real engine: Podman drops ``--expose`` there, so the port is
declared with ``SERVICE_PORTS``; a container that asks for a service but yields no port is named in a
warning instead of vanishing silently."""

from __future__ import annotations

import urllib.request

import pytest

from tests.healthchecks.conftest import checks_of, owned
from tests.healthchecks.engines import EngineDaemon
from tests.support.consul_agent import ConsulAgent
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def _serve_on_host(engine: EngineDaemon, name: str, port: int, **labels: str) -> object:
    return engine.run(
        name,
        labels=labels,
        command=["httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", "/www"],
        network_mode="host",
    )


def test_host_network_container_registers_its_declared_port(
    engine: EngineDaemon, consul: ConsulAgent, companion_factory
) -> None:
    companion = companion_factory(engine).start()
    port = free_port()
    _serve_on_host(
        engine,
        "hn1",
        port,
        SERVICE_NAME="hostnet",
        SERVICE_PORTS=str(port),
        SERVICE_CHECK_HTTP="/index.html",
        SERVICE_CHECK_INTERVAL="1s",
    )
    sid = f"{companion.hostname}:hn1:{port}"
    wait_until(lambda: sid in owned(consul, companion.hostname), 20, what="host-network service registered")
    service = owned(consul, companion.hostname)[sid]
    assert (service["Service"], service["Address"], service["Port"]) == ("hostnet", "127.0.0.1", port)
    wait_until(
        lambda: checks_of(consul, sid).get(f"{sid}:http") == "passing", 20, what="its HTTP check passing"
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as answer:
        assert answer.read() == b"hello\n"  # really served on the host's loopback


def test_host_network_container_without_a_port_is_named_in_a_warning(
    engine: EngineDaemon, consul: ConsulAgent, companion_factory
) -> None:
    companion = companion_factory(engine).start()
    _serve_on_host(engine, "hn2", free_port(), SERVICE_NAME="hostnet")
    expected = "container hn2 asks for a service but has no port to register: it is on the host network"
    wait_until(lambda: expected in companion.output(), 20, what="the warning naming hn2")
    assert owned(consul, companion.hostname) == {}
    assert companion.output().count(expected) == 1  # once, not on every reconcile
