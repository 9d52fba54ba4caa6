"""The Lua balancer routes by the pushed peers: weights, backups, the empty set, the file's fallback."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.lua import LuaNginx
from tests.support.waiting import wait_until


def worker_pids(nginx: LuaNginx) -> list[str]:
    """The master's children right now."""
    assert nginx.server.proc is not None
    pid = nginx.server.proc.pid
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


def test_an_upstream_not_in_runtime_state_routes_by_the_file(lua_nginx: LuaNginx) -> None:
    assert lua_nginx.state()["upstreams"] == {}
    assert set(lua_nginx.count(8)) == {"b1", "b2"}


def test_a_push_routes_to_the_new_peers_with_no_reload(lua_nginx: LuaNginx) -> None:
    status, body = lua_nginx.push({"primes": [lua_nginx.peer("b3")]})
    assert (status, body) == (200, {"generation": 1})
    assert lua_nginx.count(8) == {"b3": 8}
    assert lua_nginx.push({"primes": [lua_nginx.peer("b3"), lua_nginx.peer("b4")]})[0] == 200
    assert set(lua_nginx.count(8)) == {"b3", "b4"}
    assert lua_nginx.server.reloads() == 0


def test_requests_follow_the_weights(lua_nginx: LuaNginx) -> None:
    lua_nginx.push({"primes": [lua_nginx.peer("b1", weight=3), lua_nginx.peer("b2")]})
    seen = lua_nginx.count(80)
    # Two workers, each exact over its own share: 3:1 within a few requests.
    assert 54 <= seen["b1"] <= 66 and seen["b1"] + seen["b2"] == 80, seen


def test_a_backup_is_used_only_when_the_primaries_are_gone(lua_nginx: LuaNginx) -> None:
    lua_nginx.push({"primes": [lua_nginx.peer("b1"), lua_nginx.peer("b2", backup=True)]})
    assert lua_nginx.count(10) == {"b1": 10}
    # The primary refuses connections: each request fails over to the backup, none fails.
    lua_nginx.push({"primes": [lua_nginx.peer(1), lua_nginx.peer("b2", backup=True)]})
    assert lua_nginx.count(10) == {"b2": 10}
    lua_nginx.push({"primes": [lua_nginx.peer("b2", backup=True)]})
    assert lua_nginx.count(4) == {"b2": 4}


def test_a_failed_peer_is_retried_on_another_within_the_request(lua_nginx: LuaNginx) -> None:
    lua_nginx.push({"primes": [lua_nginx.peer(1), lua_nginx.peer("b3")]})
    assert lua_nginx.count(10) == {"b3": 10}


def test_every_peer_failing_answers_502(lua_nginx: LuaNginx) -> None:
    lua_nginx.push({"primes": [lua_nginx.peer(1), lua_nginx.peer(1, backup=True)]})
    assert lua_nginx.count(3) == {"502": 3}


def test_an_empty_peer_list_answers_502_at_once(lua_nginx: LuaNginx) -> None:
    lua_nginx.push({"primes": []})
    assert lua_nginx.count(4) == {"502": 4}
    # At once: nginx never tried to connect anywhere (a refused connect would be logged).
    assert "connect() failed" not in lua_nginx.server.error_log.read_text()
    assert lua_nginx.push({"primes": [lua_nginx.peer("b4")]})[0] == 200
    assert lua_nginx.count(3) == {"b4": 3}


def test_dropping_an_upstream_from_runtime_state_routes_by_the_file_again(lua_nginx: LuaNginx) -> None:
    lua_nginx.push({"primes": [lua_nginx.peer("b3")]})
    assert lua_nginx.count(4) == {"b3": 4}
    lua_nginx.push({})  # full: the upstreams not listed leave runtime state
    assert set(lua_nginx.count(8)) == {"b1", "b2"}


def test_a_partial_push_changes_only_the_listed_upstreams(lua_nginx: LuaNginx) -> None:
    lua_nginx.push({"primes": [lua_nginx.peer("b3")], "other": [lua_nginx.peer("b1")]})
    lua_nginx.push({"other": [lua_nginx.peer("b2")]}, full=False)
    state = lua_nginx.state()["upstreams"]
    assert [p["port"] for p in state["primes"]] == [lua_nginx.backends["b3"]]
    assert [p["port"] for p in state["other"]] == [lua_nginx.backends["b2"]]


def test_the_endpoint_is_not_served_on_the_public_port(lua_nginx: LuaNginx) -> None:
    status, body = lua_nginx.server.get("/upstreams/peers")
    assert status == 200 and body in {"b1", "b2"}  # the public server proxies every path to the upstream
    with socket.create_connection(("127.0.0.1", lua_nginx.server.port), timeout=5) as sock:
        sock.sendall(b"POST /upstreams/peers HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}")
        assert b"generation" not in sock.recv(4096)
    assert lua_nginx.state()["generation"] == 0


def replaced(nginx: LuaNginx, old: str) -> bool:
    """Whether the master's only worker is a new one."""
    pids = worker_pids(nginx)
    return len(pids) == 1 and pids != [old]


def test_each_fresh_peer_list_starts_at_a_random_peer(tmp_path: Path) -> None:
    nginx = LuaNginx(tmp_path / "nginx", workers=1)
    nginx.write_upstream(["b1"])
    nginx.start()
    try:
        peers = [nginx.peer(b) for b in ("b1", "b2", "b3", "b4")]
        first = set()
        for _ in range(12):
            nginx.push({"primes": []})
            assert nginx.server.get()[0] == 502  # the worker has seen the empty list...
            nginx.push({"primes": peers})  # ... so it builds this one's round robin afresh
            first.add(nginx.server.get()[1])
        # Starting at the first peer every time would give {"b1"}; random starts give 1 in 4^11 odds.
        assert len(first) > 1, first
    finally:
        nginx.stop()


def test_fresh_workers_start_at_random_peers(tmp_path: Path) -> None:
    nginx = LuaNginx(tmp_path / "nginx", workers=1)
    nginx.write_upstream(["b1"])
    nginx.start()
    try:
        nginx.push({"primes": [nginx.peer(b) for b in ("b1", "b2", "b3", "b4")]})
        first = set()
        for _ in range(8):
            (old,) = worker_pids(nginx)
            assert nginx.server.proc is not None
            os.kill(nginx.server.proc.pid, signal.SIGHUP)  # a new worker; the shared dict survives
            wait_until(lambda old=old: replaced(nginx, old), what="the new worker")
            first.add(nginx.server.get()[1])
        assert len(first) > 1, first
    finally:
        nginx.stop()


def test_the_endpoint_can_be_a_unix_socket(tmp_path: Path) -> None:
    nginx = LuaNginx(tmp_path / "nginx", unix=tmp_path / "peers.sock")
    nginx.write_upstream(["b1"])
    nginx.start()
    try:
        assert nginx.push({"primes": [nginx.peer("b2")]})[0] == 200
        assert nginx.count(3) == {"b2": 3}
        assert (
            "listen unix:" in nginx.server.snippet and f":{nginx.endpoint_port}" not in nginx.server.snippet
        )
    finally:
        nginx.stop()


def test_two_hundred_flips_under_load_fail_no_request(lua_nginx: LuaNginx) -> None:
    answers: Counter[str] = Counter()
    done = threading.Event()

    def load() -> None:
        # Two clients, each on its own keep-alive connection, as long as the flips go on.
        conn = http.client.HTTPConnection("127.0.0.1", lua_nginx.server.port, timeout=5)
        while not done.is_set():
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read().decode().strip()
            answers[body if resp.status == 200 else str(resp.status)] += 1
        conn.close()

    sets = (
        [lua_nginx.peer("b1"), lua_nginx.peer("b2")],
        [lua_nginx.peer("b3")],
        [lua_nginx.peer("b4", weight=5)],
    )
    with ThreadPoolExecutor(2) as pool:
        clients = [pool.submit(load) for _ in range(2)]
        for flip in range(200):
            assert lua_nginx.push({"primes": sets[flip % 3]})[0] == 200
        done.set()
        for client in clients:
            client.result()
    assert set(answers) <= {"b1", "b2", "b3", "b4"}, answers
    assert sum(answers.values()) > 0 and lua_nginx.server.reloads() == 0


def test_the_fallback_is_nginx_round_robin_with_the_file_flags(lua_nginx: LuaNginx) -> None:
    # Not in runtime state: the file's `backup` and `down` apply, as nginx's own balancer reads them.
    conf = lua_nginx.server.upstreams
    ports = lua_nginx.backends
    hook = '    balancer_by_lua_block { require("upstreams.balancer").balance("primes") }\n'
    conf.write_text(
        f"upstream primes {{\n    server 127.0.0.1:{ports['b1']} down;\n    server 127.0.0.1:{ports['b2']};\n"
        f"    server 127.0.0.1:{ports['b3']} backup;\n{hook}}}\n"
    )
    reload(lua_nginx)
    assert lua_nginx.count(6) == {"b2": 6}
    lua_nginx.write_upstream([])  # the empty upstream's `server 127.0.0.1:1 down;`
    reload(lua_nginx)
    assert lua_nginx.count(3) == {"502": 3}


def reload(nginx: LuaNginx) -> None:
    """SIGHUP, then wait until only the new worker serves."""
    old = worker_pids(nginx)
    assert nginx.server.proc is not None
    os.kill(nginx.server.proc.pid, signal.SIGHUP)
    wait_until(
        lambda: (pids := worker_pids(nginx)) and not set(pids) & set(old) and len(pids) == len(old),
        what="the reload",
    )
