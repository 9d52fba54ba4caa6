"""The Lua balancer routes by the pushed peers: weights, backups, the empty set, the file's fallback."""

from __future__ import annotations

import socket

from tests.renderer.dynamic.conftest import LuaNginx


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
