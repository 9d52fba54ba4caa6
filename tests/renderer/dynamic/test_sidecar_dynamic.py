"""The sidecar in dynamic mode, end to end: Consul health flips reach nginx by push, without a reload."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.ports import free_port
from tests.renderer.conftest import register_backend
from tests.renderer.dynamic.conftest import LuaNginx
from tests.renderer.dynamic.sidecars import dynamic_config, metric, ports_of, runtime_ports, status_listen
from tests.support.consul_agent import ConsulAgent
from tests.support.http import get
from tests.support.load import Load
from tests.support.sidecar import UPSTREAMS, SidecarProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

Start = Callable[..., SidecarProcess]


def routed(nginx: LuaNginx, requests: int = 12) -> set[str]:
    return set(nginx.count(requests))


def started(
    tmp_path: Path, consul: ConsulAgent, nginx: LuaNginx, start: Start, *names: str, **kw: object
) -> SidecarProcess:
    """Backends ``names`` registered and passing, a dynamic sidecar started, its first render live and synced."""
    for name in names:
        register_backend(consul, nginx.server, name)
    sidecar = start(dynamic_config(tmp_path, consul, nginx, **kw))  # type: ignore[arg-type]
    wait_until(lambda: "nginx reloaded" in sidecar.output(), what="the first render reloaded")
    wait_until(lambda: runtime_ports(nginx) == ports_of(nginx, *names), what="runtime state synced after it")
    # The old workers keep accepting for ~100 ms after a reload: a connection made then would be closed.
    wait_until(lambda: nginx.server.workers() == nginx.server.worker_count, what="the reload handed over")
    return sidecar


def test_a_health_flip_routes_with_zero_reloads(
    tmp_path: Path, consul: ConsulAgent, lua_nginx: LuaNginx, start_sidecar: Start
) -> None:
    sidecar = started(tmp_path, consul, lua_nginx, start_sidecar, "b1", "b2", "b3")
    wait_until(lambda: routed(lua_nginx) == {"b1", "b2", "b3"}, what="three backends in rotation")
    reloads = lua_nginx.server.reloads()
    consul.set_ttl("b2", "critical")
    wait_until(lambda: routed(lua_nginx) == {"b1", "b3"}, what="b2 out of rotation")
    consul.set_ttl("b2", "passing")
    wait_until(lambda: routed(lua_nginx) == {"b1", "b2", "b3"}, what="b2 back")
    # The file stays the durable truth: it is written too (while the push goes out, so maybe just after).
    port = str(lua_nginx.backends["b2"])
    wait_until(lambda: port in lua_nginx.server.upstreams.read_text(), timeout=5, what="b2 in the file")
    for name in ("b1", "b2", "b3"):  # to the empty set and back: 502 at once, as the classic path
        consul.set_ttl(name, "critical")
    wait_until(lambda: routed(lua_nginx) == {"502"}, what="no instance left: 502")
    wait_until(
        lambda: "down;" in lua_nginx.server.upstreams.read_text(), timeout=5, what="the empty set written"
    )
    consul.set_ttl("b3", "passing")
    wait_until(lambda: routed(lua_nginx) == {"b3"}, what="b3 back from the empty set")
    assert lua_nginx.server.reloads() == reloads
    assert sidecar.output().count("pushed 1 changed upstream(s)") >= 2


def test_a_keep_alive_connection_survives_100_flips(
    tmp_path: Path, consul: ConsulAgent, lua_nginx: LuaNginx, start_sidecar: Start
) -> None:
    started(tmp_path, consul, lua_nginx, start_sidecar, "b1", "b2")
    conn = http.client.HTTPConnection("127.0.0.1", lua_nginx.server.port, timeout=5)
    conn.request("GET", "/")
    conn.getresponse().read()
    sock = conn.sock
    reloads = lua_nginx.server.reloads()
    for flip in range(100):
        down = flip % 2 == 0
        consul.set_ttl("b2", "critical" if down else "passing")
        want = ports_of(lua_nginx, "b1") if down else ports_of(lua_nginx, "b1", "b2")
        wait_until(lambda want=want: runtime_ports(lua_nginx) == want, what=f"flip {flip} pushed")
        for _ in range(3):
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read().decode().strip()
            assert resp.status == 200 and (body == "b1" or not down), (flip, resp.status, body)
    assert conn.sock is sock  # never reconnected: nginx never closed it
    assert lua_nginx.server.reloads() == reloads
    conn.close()


def test_with_the_endpoint_down_the_reload_path_applies_the_change(
    tmp_path: Path, consul: ConsulAgent, lua_nginx: LuaNginx, start_sidecar: Start
) -> None:
    listen, base = status_listen()
    for name in ("b1", "b2"):
        register_backend(consul, lua_nginx.server, name)
    # Nothing listens where the sidecar pushes: every push fails, every change still arrives.
    sidecar = start_sidecar(
        dynamic_config(tmp_path, consul, lua_nginx, endpoint_port=free_port(), status=listen)
    )
    wait_until(lambda: "nginx reloaded" in sidecar.output(), what="the first render reloaded")
    wait_until(lambda: routed(lua_nginx) == {"b1", "b2"}, what="the first render live")
    reloads = lua_nginx.server.reloads()
    consul.set_ttl("b2", "critical")
    wait_until(lambda: routed(lua_nginx) == {"b1"}, what="b2 out of rotation by a reload")
    assert lua_nginx.server.reloads() == reloads + 1
    assert metric(base, 'upstreams_dynamic_fallbacks_total{reason="unreachable"}') == 1.0
    assert "the push failed, so nginx reloads them instead" in sidecar.output()
    # The workers the reload started loaded the state file written with the files.
    assert runtime_ports(lua_nginx) == ports_of(lua_nginx, "b1")


def test_a_restarted_nginx_routes_what_the_file_says(
    tmp_path: Path, consul: ConsulAgent, lua_nginx: LuaNginx, start_sidecar: Start
) -> None:
    started(tmp_path, consul, lua_nginx, start_sidecar, "b1", "b2", "b3")
    consul.set_ttl("b3", "critical")
    wait_until(lambda: runtime_ports(lua_nginx) == ports_of(lua_nginx, "b1", "b2"), what="b3 pushed out")
    lua_nginx.stop()
    lua_nginx.start()  # shared memory is gone: only the state file brings the peers back
    assert runtime_ports(lua_nginx) == ports_of(lua_nginx, "b1", "b2")
    assert routed(lua_nginx) == {"b1", "b2"}
    consul.set_ttl("b3", "passing")
    wait_until(lambda: routed(lua_nginx) == {"b1", "b2", "b3"}, what="the next flip pushed to the new nginx")


def test_a_failed_reload_leaves_runtime_state_unchanged(
    tmp_path: Path, consul: ConsulAgent, lua_nginx: LuaNginx, start_sidecar: Start
) -> None:
    sidecar = started(tmp_path, consul, lua_nginx, start_sidecar, "b1", "b2")
    consul.register_ttl("other", "o3", lua_nginx.backends["b3"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # A template edit nginx -t accepts (it binds nothing) and the reload then fails on: the port is taken.
        template = (
            '{% import "nginx.j2" as nginx %}\n'
            '{{ nginx.upstream("primes", service("other")) }}\n'
            f"server {{ listen 127.0.0.1:{port}; return 204; }}\n"
        )
        (tmp_path / "upstreams.conf.j2").write_text(template)
        wait_until(
            lambda: "Address already in use" in lua_nginx.server.error_log.read_text(),
            what="the reload failed",
        )
        wait_until(
            lambda: "has not loaded the runtime state" in sidecar.output(),
            timeout=30,
            what="the sidecar saw it",
        )
        assert runtime_ports(lua_nginx) == ports_of(lua_nginx, "b1", "b2")
        assert routed(lua_nginx) == {"b1", "b2"}


def test_drift_is_repaired(
    tmp_path: Path, consul: ConsulAgent, lua_nginx: LuaNginx, start_sidecar: Start
) -> None:
    listen, base = status_listen()
    sidecar = started(tmp_path, consul, lua_nginx, start_sidecar, "b1", "b2", status=listen)
    # Someone else's push, newer than anything the sidecar wrote.
    status, _ = lua_nginx.push({"primes": [lua_nginx.peer("b4")]}, generation=2**52)
    assert status == 200 and routed(lua_nginx) == {"b4"}
    sidecar.signal(signal.SIGHUP)  # SIGHUP reads back runtime state at once (else within 30 s)
    wait_until(lambda: runtime_ports(lua_nginx) == ports_of(lua_nginx, "b1", "b2"), what="the drift repaired")
    assert routed(lua_nginx) == {"b1", "b2"}
    # Counted once its push is answered, a moment after nginx holds it.
    wait_until(lambda: metric(base, "upstreams_dynamic_repairs_total") == 1.0, what="the repair counted")
    assert lua_nginx.state()["generation"] > 2**52
    dynamic = json.loads(get(f"{base}/status")[1])["dynamic"]
    assert (dynamic["mode"], dynamic["generation"]) == ("dynamic", lua_nginx.state()["generation"])
    assert dynamic["last_push"] is not None and dynamic["last_error"] is None


def test_200_flips_under_load_fail_no_request(
    tmp_path: Path, consul: ConsulAgent, lua_nginx: LuaNginx, start_sidecar: Start
) -> None:
    started(tmp_path, consul, lua_nginx, start_sidecar, "b1", "b2", "b3")
    reloads = lua_nginx.server.reloads()
    with Load(lua_nginx.server) as load:
        for flip in range(200):
            down = flip % 2 == 0
            consul.set_ttl("b2", "critical" if down else "passing")
            want = ports_of(lua_nginx, "b1", "b3") if down else ports_of(lua_nginx, "b1", "b2", "b3")
            wait_until(lambda want=want: runtime_ports(lua_nginx) == want, what=f"flip {flip} pushed")
    assert load.sent > 200 and load.failed == 0, load.failures[:5]
    assert lua_nginx.server.reloads() == reloads


def test_the_endpoint_on_a_unix_socket(tmp_path: Path, consul: ConsulAgent, start_sidecar: Start) -> None:
    nginx = LuaNginx(tmp_path / "nginx", unix=tmp_path / "nginx" / "peers.sock")
    nginx.write_upstream(["b1", "b2"])
    nginx.start()
    try:
        started(tmp_path, consul, nginx, start_sidecar, "b1", "b2")
        reloads = nginx.server.reloads()
        consul.set_ttl("b1", "critical")
        wait_until(lambda: routed(nginx) == {"b2"}, what="b1 out of rotation")
        assert nginx.server.reloads() == reloads
    finally:
        nginx.stop()


def render_once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [UPSTREAMS, "render", "--config", str(config)], capture_output=True, text=True, timeout=60
    )


def test_render_once_leaves_runtime_state_as_the_file_says(
    tmp_path: Path, consul: ConsulAgent, lua_nginx: LuaNginx
) -> None:
    for name in ("b1", "b3"):
        register_backend(consul, lua_nginx.server, name)
    config = dynamic_config(tmp_path, consul, lua_nginx)
    done = render_once(config)
    assert done.returncode == 0, done.stderr
    assert (
        "nginx accepted them" in done.stderr
    )  # one process: its change is a first one, checked and reloaded
    assert runtime_ports(lua_nginx) == ports_of(lua_nginx, "b1", "b3")
    # Someone else's push; the files are unchanged, and render still puts runtime state back before it exits.
    assert lua_nginx.push({"primes": [lua_nginx.peer("b4")]}, generation=2**52)[0] == 200
    done = render_once(config)
    assert done.returncode == 0, done.stderr
    assert "repaired with a full push" in done.stderr
    assert runtime_ports(lua_nginx) == ports_of(lua_nginx, "b1", "b3")


def test_a_push_whose_file_could_not_be_written_is_taken_back(
    tmp_path: Path, consul: ConsulAgent, lua_nginx: LuaNginx, start_sidecar: Start
) -> None:
    """The push goes out while the file is written: when the write fails, nginx is set back to the file."""
    sidecar = started(tmp_path, consul, lua_nginx, start_sidecar, "b1", "b2")
    folder = lua_nginx.server.conf_d
    # Immutable: nothing can be created in it, not even by root (the write's temporary file).
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        consul.set_ttl("b2", "critical")
        wait_until(lambda: "Cannot create a temporary file" in sidecar.output(), what="the write refused")
        wait_until(
            lambda: runtime_ports(lua_nginx) == ports_of(lua_nginx, "b1", "b2"),
            what="the push taken back: runtime state follows the file",
        )
        # Logged once the repair's push has answered, which can be just after nginx shows it.
        wait_until(lambda: "repaired with a full push" in sidecar.output(), what="the repair logged")
        assert routed(lua_nginx) == {"b1", "b2"}
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
