"""The update endpoint: validated all or nothing, stale generations refused, answers in JSON."""

from __future__ import annotations

import http.client
import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.lua import LuaNginx
from tests.support.waiting import wait_until

GOOD = {"address": "127.0.0.1", "port": 8080}
HOSTILE: list[tuple[str, Any]] = [
    ("host name", {"x": [{"address": "example.com", "port": 80}]}),
    ("address with a port", {"x": [{"address": "127.0.0.1:80", "port": 80}]}),
    ("octet over 255", {"x": [{"address": "127.0.0.256", "port": 80}]}),
    ("leading zero", {"x": [{"address": "127.0.0.01", "port": 80}]}),
    ("IPv6 in brackets", {"x": [{"address": "[::1]", "port": 80}]}),
    ("IPv6 with a zone", {"x": [{"address": "fe80::1%eth0", "port": 80}]}),
    ("IPv6 with two ::", {"x": [{"address": "1::2::3", "port": 80}]}),
    ("newline in the address", {"x": [{"address": "127.0.0.1\n", "port": 80}]}),
    ("address as a number", {"x": [{"address": 2130706433, "port": 80}]}),
    ("empty address", {"x": [{"address": "", "port": 80}]}),
    ("IPv6 with nine groups", {"x": [{"address": "1:2:3:4:5:6:7:8:9", "port": 80}]}),
    ("port 0", {"x": [{"address": "127.0.0.1", "port": 0}]}),
    ("port 70000", {"x": [{"address": "127.0.0.1", "port": 70000}]}),
    ("port as a string", {"x": [{"address": "127.0.0.1", "port": "80"}]}),
    ("fractional port", {"x": [{"address": "127.0.0.1", "port": 80.5}]}),
    ("weight 0", {"x": [{**GOOD, "weight": 0}]}),
    ("weight 1001", {"x": [{**GOOD, "weight": 1001}]}),
    ("backup as a string", {"x": [{**GOOD, "backup": "yes"}]}),
    ("peer not an object", {"x": ["127.0.0.1:80"]}),
    ("peers not a list", {"x": {"address": "127.0.0.1", "port": 80}}),
    ("bad name", {"bad name;": [GOOD]}),
    ("name with a brace", {"x}": [GOOD]}),
    ("name too long", {"a" * 1025: [GOOD]}),
    ("one good, one bad", {"good": [GOOD], "x": [{"address": "localhost", "port": 80}]}),
    ("too many peers", {"x": [GOOD] * 10001}),
]


def test_get_returns_what_was_pushed(lua_nginx: LuaNginx) -> None:
    pushed = {"primes": [{"address": "127.0.0.1", "port": 81, "weight": 2, "backup": False}], "empty": []}
    pushed["six"] = [{"address": "::1", "port": 82, "weight": 1, "backup": True}]
    assert lua_nginx.push(pushed, generation=1733000000123)[0] == 200
    assert lua_nginx.state() == {"generation": 1733000000123, "full": True, "upstreams": pushed}


def test_a_stale_generation_is_refused_and_changes_nothing(lua_nginx: LuaNginx) -> None:
    lua_nginx.push({"primes": [lua_nginx.peer("b3")]}, generation=5)
    before = lua_nginx.state()
    for stale in (5, 4):
        status, body = lua_nginx.push({"primes": [lua_nginx.peer("b4")]}, generation=stale)
        assert status == 409 and body["generation"] == 5, body
        assert body["error"].endswith(".")
    assert lua_nginx.state() == before
    assert lua_nginx.count(4) == {"b3": 4}


@pytest.mark.parametrize(("case", "upstreams"), HOSTILE, ids=[case for case, _ in HOSTILE])
def test_hostile_data_is_refused_and_changes_nothing(lua_nginx: LuaNginx, case: str, upstreams: Any) -> None:
    lua_nginx.push({"primes": [lua_nginx.peer("b3")]})
    before = lua_nginx.state()
    status, body = lua_nginx.push(upstreams)
    assert status == 400, (case, body)
    assert list(body) == ["error"] and body["error"].endswith("."), body
    assert lua_nginx.state() == before


@pytest.mark.parametrize(
    "doc",
    [
        [],
        "text",
        {"generation": "7", "full": True, "upstreams": {}},
        {"generation": -1, "full": True, "upstreams": {}},
        {"generation": 1.5, "full": True, "upstreams": {}},
        {"generation": 7, "full": "yes", "upstreams": {}},
        {"generation": 7, "upstreams": {}},
        {"generation": 7, "full": True, "upstreams": [GOOD]},
        {"generation": 7, "full": True},
    ],
)
def test_a_malformed_document_is_refused(lua_nginx: LuaNginx, doc: Any) -> None:
    status, body = lua_nginx.send(doc)
    assert status == 400 and body["error"].endswith("."), body
    assert lua_nginx.state()["generation"] == 0


@pytest.mark.parametrize("body", [b"", b"not json", b'{"generation": 1, ', b"\xff\xfe"])
def test_a_body_that_is_not_json_is_refused(lua_nginx: LuaNginx, body: bytes) -> None:
    status, answer = lua_nginx.request("POST", body)
    assert status == 400 and answer["error"].endswith("."), answer


def test_too_many_upstreams_are_refused(lua_nginx: LuaNginx) -> None:
    status, body = lua_nginx.push({f"u{i}": [] for i in range(100001)})
    assert status == 400 and "more than 100000 upstreams" in body["error"], body
    assert lua_nginx.state()["upstreams"] == {}


def test_ipv6_literals_are_accepted(lua_nginx: LuaNginx) -> None:
    addresses = ["::1", "::", "fe80::1", "2001:db8::8:800:200c:417a", "::ffff:127.0.0.1", "1:2:3:4:5:6:7:8"]
    upstreams = {f"v{i}": [{"address": a, "port": 80}] for i, a in enumerate(addresses)}
    assert lua_nginx.push(upstreams)[0] == 200


def test_a_body_over_the_cap_is_refused_with_413(lua_nginx: LuaNginx) -> None:
    status, body = lua_nginx.request("POST", b" " * (16 * 1024 * 1024 + 1))
    assert status == 413 and "error" in body
    assert lua_nginx.state()["generation"] == 0


def test_other_methods_are_refused_with_405(lua_nginx: LuaNginx) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        status, body = lua_nginx.request(method, b"{}")
        assert status == 405 and body["error"].endswith("."), body


def test_a_client_keep_alive_connection_survives_many_pushes(lua_nginx: LuaNginx) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", lua_nginx.server.port, timeout=5)
    conn.request("GET", "/")
    conn.getresponse().read()
    sock = conn.sock
    for flip in range(100):
        backend = ("b3", "b4")[flip % 2]
        assert lua_nginx.push({"primes": [lua_nginx.peer(backend)]})[0] == 200
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert (resp.status, resp.read().decode().strip()) == (200, backend)
        assert conn.sock is sock  # the same connection: no reload closed it
    conn.close()
    assert lua_nginx.server.reloads() == 0


def test_the_endpoint_answers_json_for_other_paths(lua_nginx: LuaNginx) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", lua_nginx.endpoint_port, timeout=5)
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert resp.status == 404 and "error" in json.loads(resp.read())
    conn.close()


def test_a_state_too_large_for_the_shared_dict_changes_nothing(tmp_path: Path) -> None:
    nginx = LuaNginx(tmp_path / "nginx")
    nginx.server.snippet = nginx.server.snippet.replace(
        "lua_shared_dict upstreams 32m;", "lua_shared_dict upstreams 1m;"
    )
    nginx.write_upstream(["b1"])
    nginx.start()
    try:
        assert nginx.push({"primes": [nginx.peer("b3")], "other": [GOOD]})[0] == 200
        before = nginx.state()
        huge = {f"u{i}": [{**GOOD, "port": p} for p in range(1, 11)] for i in range(3000)}
        status, body = nginx.push({**huge, "primes": [nginx.peer("b4")]})
        assert status == 507 and "no room" in body["error"], body
        assert nginx.state() == before
        # Fresh workers read the dict itself, not a cached copy: what they route is what it holds.
        assert nginx.server.proc is not None
        os.kill(nginx.server.proc.pid, signal.SIGHUP)
        wait_until(lambda: "reconfiguring" in nginx.server.error_log.read_text(), what="the reload")
        nginx.server.wait_settled()
        assert nginx.count(4) == {"b3": 4}
        assert nginx.push({"primes": [nginx.peer("b4")]}, full=False)[0] == 200
    finally:
        nginx.stop()


def test_concurrent_pushes_apply_the_newest_and_refuse_the_rest(lua_nginx: LuaNginx) -> None:
    def push(generation: int) -> int:
        return lua_nginx.push({"primes": [lua_nginx.peer("b3", weight=generation)]}, generation=generation)[0]

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(push, range(1, 41)))
    # The newest always wins; each other one is applied or refused as stale, never lost half-way.
    assert set(statuses) <= {200, 409} and statuses[-1] == 200, statuses
    state = lua_nginx.state()
    assert state["generation"] == 40
    # Whatever order they ran in, the state is one push's whole document, of the generation reported.
    assert state["upstreams"]["primes"][0]["weight"] == state["generation"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20,
    )
)
def test_any_json_value_is_answered_200_or_400_never_500(lua_nginx: LuaNginx, value: Any) -> None:
    doc = {"generation": 10**12, "full": False, "upstreams": {"fuzz": value}}
    for body in (value, doc, {**doc, "upstreams": value}):
        status, answer = lua_nginx.request("POST", json.dumps(body).encode())
        assert status in (200, 400, 409), (body, answer)
