"""Dynamic mode, nginx started after the sidecar (the order operations.md recommends): a state, not an alarm."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.renderer.conftest import register_backend
from tests.renderer.dynamic.conftest import LuaNginx
from tests.renderer.dynamic.sidecars import dynamic_config, metric, ports_of, runtime_ports, status_listen
from tests.support.consul_agent import ConsulAgent
from tests.support.sidecar import UPSTREAMS, SidecarProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def test_a_change_before_nginx_starts_is_no_warning_and_no_fallback(
    tmp_path: Path, consul: ConsulAgent, lua_nginx: LuaNginx, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    lua_nginx.stop()
    lua_nginx.server.pid_file.unlink(missing_ok=True)
    register_backend(consul, lua_nginx.server, "b1")
    listen, base = status_listen()
    sidecar = start_sidecar(dynamic_config(tmp_path, consul, lua_nginx, status=listen))
    wait_until(lambda: "checked files are in place" in sidecar.output(), what="the render waiting for nginx")
    register_backend(consul, lua_nginx.server, "b2")  # a server-only change while nginx is not there yet
    written = str(lua_nginx.backends["b2"])
    wait_until(lambda: written in lua_nginx.server.upstreams.read_text(), what="b2 written")
    time.sleep(2.0)  # several reload retries find no nginx
    lua_nginx.start()
    wait_until(lambda: set(lua_nginx.count(12)) == {"b1", "b2"}, what="both served")
    wait_until(
        lambda: runtime_ports(lua_nginx) == ports_of(lua_nginx, "b1", "b2"), what="runtime state synced"
    )
    out = sidecar.output()
    assert "WARNING" not in out and "ERROR" not in out, out
    assert metric(base, 'upstreams_dynamic_fallbacks_total{reason="unreachable"}') == 0.0
    assert metric(base, "upstreams_nginx_reload_failures_total") == 0.0
    reloads = lua_nginx.server.reloads()
    consul.set_ttl("b1", "critical")  # and from now on changes are pushed
    wait_until(lambda: runtime_ports(lua_nginx) == ports_of(lua_nginx, "b2"), what="b1 pushed out")
    assert lua_nginx.server.reloads() == reloads
    assert "pushed 1 changed upstream(s)" in sidecar.output()


def test_render_before_nginx_starts_exits_0_without_a_warning(
    tmp_path: Path, consul: ConsulAgent, lua_nginx: LuaNginx
) -> None:
    lua_nginx.stop()
    lua_nginx.server.pid_file.unlink(missing_ok=True)
    register_backend(consul, lua_nginx.server, "b3")
    config = dynamic_config(tmp_path, consul, lua_nginx)
    out = subprocess.run(
        [UPSTREAMS, "render", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "WARNING" not in out.stderr and "ERROR" not in out.stderr, out.stderr
    assert str(lua_nginx.backends["b3"]) in lua_nginx.server.upstreams.read_text()
    lua_nginx.start()  # the README's order: render, then nginx, which loads the files and the state file
    wait_until(
        lambda: runtime_ports(lua_nginx) == ports_of(lua_nginx, "b3"), what="runtime state from the file"
    )
    assert set(lua_nginx.count(6)) == {"b3"}
