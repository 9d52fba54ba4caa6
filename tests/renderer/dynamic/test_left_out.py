"""Dynamic mode, end to end: an instance nginx rejects is left out of the files *and* of runtime state,
and a health flip beside it is still pushed (real Consul, nginx with the Lua module)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.renderer.dynamic.conftest import LuaNginx
from tests.renderer.dynamic.sidecars import dynamic_config, ports_of, runtime_ports, status_listen
from tests.renderer.test_rejected_instances import BAD_HOST
from tests.support.consul_agent import ConsulAgent
from tests.support.http import get
from tests.support.sidecar import SidecarProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

# The library's Python-side loop (block_loop.py, with its cached blocks), over the services tagged lb:
# upstream 'primes', which the fixture's nginx proxies to.
TEMPLATE = (
    '{% import "nginx.j2" as nginx %}\n{{ nginx.upstreams(tag="lb", passing=false, backup_warning=true) }}\n'
)


def test_a_rejected_instance_is_never_pushed_and_a_flip_beside_it_is(
    tmp_path: Path, consul: ConsulAgent, lua_nginx: LuaNginx, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    for name in ("b1", "b2", "b3"):
        consul.register_ttl("primes", name, lua_nginx.backends[name], Tags=["lb"])
    consul.register_ttl("primes", "bad", 80, address=BAD_HOST, Tags=["lb"])
    listen, base = status_listen()
    sidecar = start_sidecar(dynamic_config(tmp_path, consul, lua_nginx, status=listen, template=TEMPLATE))
    everyone = ports_of(lua_nginx, "b1", "b2", "b3")
    wait_until(lambda: runtime_ports(lua_nginx) == everyone, what="the good instances in runtime state")
    wait_until(lambda: lua_nginx.server.workers() == lua_nginx.server.worker_count, what="the reload over")

    def nowhere() -> None:
        """The bad instance is in no file nginx loads and in no runtime state."""
        assert BAD_HOST not in lua_nginx.server.upstreams.read_text()
        assert BAD_HOST not in json.dumps(lua_nginx.state())
        assert BAD_HOST not in lua_nginx.state_file.read_text()

    nowhere()
    assert sidecar.output().count("Left out instance bad of service primes") == 1
    (excluded,) = json.loads(get(f"{base}/status")[1])["excluded"]
    assert (excluded["id"], excluded["address"]) == ("bad", BAD_HOST)

    reloads = lua_nginx.server.reloads()
    consul.set_ttl("b2", "critical")  # the bad registration stays; the flip goes by push
    wait_until(lambda: set(lua_nginx.count(12)) == {"b1", "b3"}, what="b2 out of rotation")
    assert runtime_ports(lua_nginx) == ports_of(lua_nginx, "b1", "b3")
    assert lua_nginx.server.reloads() == reloads
    assert "pushed 1 changed upstream(s)" in sidecar.output()
    nowhere()
    consul.set_ttl("bad", "warning")  # its health changes, its registration does not: still left out
    consul.set_ttl("b2", "passing")
    wait_until(lambda: runtime_ports(lua_nginx) == everyone, what="b2 pushed back")
    nowhere()
    assert sidecar.output().count("Left out instance bad") == 1
