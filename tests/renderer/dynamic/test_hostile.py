"""Hostile data is refused on both sides: the sidecar never pushes it, and nginx's endpoint refuses it too."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from plumbing.errors import DynamicUpdateInvalid
from renderer.dynamic.document import decode
from tests.renderer.conftest import register_backend
from tests.renderer.dynamic.conftest import LuaNginx
from tests.renderer.dynamic.sidecars import dynamic_config, runtime_ports
from tests.support.consul_agent import ConsulAgent
from tests.support.sidecar import SidecarProcess
from tests.support.waiting import wait_until


def peer(address: object = "127.0.0.1", port: object = 8080, **extra: object) -> dict[str, object]:
    return {"address": address, "port": port, **extra}


HOSTILE = [
    {"primes": [peer("evil.example")]},  # a host name: the balancer cannot resolve, and it is not loopback
    {"primes": [peer("127.0.0.1 ; server 127.0.0.2")]},
    {"primes": [peer("fe80::1%eth0")]},
    {"primes": [peer(port=0)]},
    {"primes": [peer(port=70000)]},
    {"primes": [peer(port="80")]},
    {"primes": [peer(weight=0)]},
    {"primes": [peer(weight=10**6)]},
    {"primes": [peer(backup="yes")]},
    {"primes": [peer(), "not a peer"]},
    {"primes": {"address": "127.0.0.1"}},
    {"bad name!": [peer()]},
    {"x" * 1025: [peer()]},
]


@pytest.mark.parametrize("upstreams", HOSTILE)
def test_hostile_documents_are_refused_by_the_sidecar_and_by_nginx(
    lua_nginx: LuaNginx, upstreams: dict[str, object]
) -> None:
    lua_nginx.push({"primes": [lua_nginx.peer("b1")]})
    before = lua_nginx.state()
    doc = {"generation": lua_nginx.generation + 1, "full": True, "upstreams": upstreams}
    with pytest.raises(DynamicUpdateInvalid):
        decode(json.dumps(doc).encode(), "the update")  # the rules the sidecar applies before it pushes
    status, answer = lua_nginx.send(doc)
    assert status == 400 and answer["error"], answer
    assert lua_nginx.state() == before
    assert set(lua_nginx.count(4)) == {"b1"}


@pytest.mark.slow
def test_an_upstream_with_a_host_name_is_never_pushed(
    tmp_path: Path, consul: ConsulAgent, lua_nginx: LuaNginx, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(consul, lua_nginx.server, "b1")
    sidecar = start_sidecar(dynamic_config(tmp_path, consul, lua_nginx))
    wait_until(lambda: runtime_ports(lua_nginx) == [lua_nginx.backends["b1"]], what="b1 in runtime state")
    # nginx resolves 'localhost' when it loads the file; the Lua balancer could not, so this upstream
    # leaves runtime state and nginx's own round robin over the file's lines serves it.
    consul.register_ttl("prime", "named", lua_nginx.backends["b2"], address="localhost")
    wait_until(lambda: runtime_ports(lua_nginx) is None, what="primes out of runtime state")
    wait_until(lambda: set(lua_nginx.count(12)) == {"b1", "b2"}, what="both served from the file")
    assert "localhost" not in json.dumps(lua_nginx.state())
    assert "localhost" not in lua_nginx.state_file.read_text()
    assert "pushed" not in sidecar.output()  # the change took the checked reload path, no push
