"""nginx restarted or reloaded: workers load the state file at start; a failed reload changes nothing."""

from __future__ import annotations

import json
import os
import signal
import socket

from harness.lua import LuaNginx
from tests.support.waiting import wait_until


def write_state(nginx: LuaNginx, generation: int, upstreams: dict[str, object]) -> None:
    """What the sidecar writes beside the rendered files before any push or reload."""
    doc = {"generation": generation, "full": True, "upstreams": upstreams}
    nginx.state_file.write_text(json.dumps(doc))


def restart(nginx: LuaNginx) -> None:
    """Stop and start nginx; wait for the worker that took the lock to have loaded the file (or not)."""
    nginx.stop()
    nginx.server.error_log.unlink()
    nginx.start()
    # The master listens before its workers start: the first request may reach the worker that did not
    # take the lock, before the other one has loaded the file (it then routes by the file, which is equal).
    wait_until(lambda: "upstreams: " in nginx.server.error_log.read_text(), what="the state file loaded")


def test_a_restarted_nginx_routes_by_the_state_file(lua_nginx: LuaNginx) -> None:
    upstreams = {"primes": [lua_nginx.peer("b3"), lua_nginx.peer("b4", weight=1)]}
    write_state(lua_nginx, 40, upstreams)
    lua_nginx.push(upstreams, generation=40)
    restart(lua_nginx)  # shared memory is lost on restart: only the file can bring the state back
    state = lua_nginx.state()
    assert state["generation"] == 40
    assert [p["port"] for p in state["upstreams"]["primes"]] == [lua_nginx.backends[b] for b in ("b3", "b4")]
    assert set(lua_nginx.count(8)) == {"b3", "b4"}
    assert lua_nginx.server.error_log.read_text().count("upstreams: ") == 1  # one worker loads, once


def test_a_missing_state_file_leaves_the_file_routing(lua_nginx: LuaNginx) -> None:
    assert not lua_nginx.state_file.exists()
    wait_until(
        lambda: "cannot read the state file" in lua_nginx.server.error_log.read_text(), what="the error"
    )
    assert set(lua_nginx.count(6)) == {"b1", "b2"}


def test_an_invalid_state_file_is_logged_and_changes_nothing(lua_nginx: LuaNginx) -> None:
    write_state(lua_nginx, 3, {"primes": [{"address": "example.com", "port": 80}]})
    restart(lua_nginx)
    assert "state file not loaded: Peer 1 of upstream primes" in lua_nginx.server.error_log.read_text()
    assert lua_nginx.state()["upstreams"] == {}
    assert set(lua_nginx.count(6)) == {"b1", "b2"}


def test_a_reload_loads_a_newer_state_file(lua_nginx: LuaNginx) -> None:
    lua_nginx.push({"primes": [lua_nginx.peer("b3")]}, generation=10)
    write_state(lua_nginx, 11, {"primes": [lua_nginx.peer("b4")]})
    assert lua_nginx.server.proc is not None
    os.kill(lua_nginx.server.proc.pid, signal.SIGHUP)
    wait_until(lambda: lua_nginx.state()["generation"] == 11, what="the new workers loading the file")
    lua_nginx.server.wait_settled()
    assert lua_nginx.count(4) == {"b4": 4}


def test_a_reload_that_fails_leaves_runtime_state_unchanged(lua_nginx: LuaNginx) -> None:
    lua_nginx.push({"primes": [lua_nginx.peer("b3")]}, generation=10)
    write_state(lua_nginx, 11, {"primes": [lua_nginx.peer("b4")]})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The new config is valid for `nginx -t` but cannot start: its port is in use.
        extra = f"server {{ listen 127.0.0.1:{port}; return 200; }}\n"
        with (lua_nginx.server.conf_d / "upstreams.conf").open("a") as conf:
            conf.write(extra)
        assert lua_nginx.server.proc is not None
        os.kill(lua_nginx.server.proc.pid, signal.SIGHUP)
        wait_until(
            lambda: "Address already in use" in lua_nginx.server.error_log.read_text(), what="the failure"
        )
    assert lua_nginx.state()["generation"] == 10
    assert lua_nginx.count(4) == {"b3": 4}
