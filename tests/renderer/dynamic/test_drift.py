"""The drift check by bytes: what the sidecar expects nginx to answer is, byte for byte, what the real Lua
answers for the same peers; a difference behind the sidecar's back is still found and repaired."""

from __future__ import annotations

import asyncio
import http.client
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renderer.config import DynamicConfig
from renderer.dynamic import client as client_module
from renderer.dynamic.document import Encoder, PeerState, encode
from renderer.dynamic.drift import answers, same_answer
from renderer.dynamic.peers import Peer
from renderer.dynamic.pusher import Pusher
from renderer.dynamic.state_file import holds
from renderer.metrics import SidecarMetrics
from tests.renderer.dynamic.conftest import LuaNginx

# Every character a name may hold, so the sort is tested where bytes and letters disagree ('B' < '_' < 'a').
NAMES = st.text("AZaz09_.-", min_size=1, max_size=6)
ADDRESSES = st.one_of(
    st.just("::1"),
    st.tuples(*[st.integers(0, 255)] * 3).map(lambda t: "127.{}.{}.{}".format(*t)),
)
PEERS = st.builds(Peer, ADDRESSES, st.integers(1, 65535), st.integers(1, 1000) | st.just(1), st.booleans())
STATES = st.dictionaries(NAMES, st.lists(PEERS, max_size=4).map(tuple), max_size=8)


def raw_state(nginx: LuaNginx) -> bytes:
    """nginx's GET answer, byte for byte."""
    conn = http.client.HTTPConnection("127.0.0.1", nginx.endpoint_port, timeout=10)
    try:
        conn.request("GET", "/upstreams/peers")
        resp = conn.getresponse()
        assert resp.status == 200
        return resp.read()
    finally:
        conn.close()


def spelled(peer: Peer, short: bool) -> dict[str, Any]:
    """A peer as a hand-made push may write it: the defaults left out, when ``short``."""
    doc = peer.as_json()
    if short and peer.weight == 1:
        del doc["weight"]
    if short and not peer.backup:
        del doc["backup"]
    return doc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=STATES, short=st.booleans())
def test_the_expected_bytes_are_what_nginx_answers(
    lua_nginx: LuaNginx, state: PeerState, short: bool
) -> None:
    doc = {name: [spelled(p, short) for p in peers] for name, peers in state.items()}
    assert lua_nginx.push(doc)[0] == 200  # full: it replaces the example before
    answer = raw_state(lua_nginx)
    expected = b"".join(Encoder().answer(state))
    assert answer == b'{"generation":%d,' % lua_nginx.generation + expected
    # The order of the files' upstreams is not nginx's: the answer is sorted.
    assert same_answer(answer, Encoder().answer(dict(reversed(list(state.items())))))


def test_an_answer_equals_only_exactly_its_bytes() -> None:
    state = {"b": (Peer("127.0.0.1", 80),), "a": ()}
    body = b'"full":true,"upstreams":{"a":[],"b":[{"address":"127.0.0.1","port":80,"weight":1,"backup":false}]}}\n'
    assert same_answer(b'{"generation":7,' + body, Encoder().answer(state))
    assert same_answer(b'{"generation":9007199254740991,' + body, Encoder().answer(state))
    for other in (
        b'{"generation":7,' + body + b"\n",  # one byte more
        b'{"generation":7,' + body[:-1],  # one byte less
        b'{"generation":7,' + body.replace(b":80,", b":81,"),
        b'{"generation": 7,' + body,  # not how the endpoint writes it
        b'{"generation":7}',
        b"",
    ):
        assert not same_answer(other, Encoder().answer(state)), other
    invalid = {"a": (Peer("evil.example", 80),)}
    assert not answers(
        Encoder(), b'{"generation":7,' + body, invalid
    )  # no answer equals a state that is not one


def test_a_peer_changed_behind_the_sidecars_back_is_found_and_repaired(
    lua_nginx: LuaNginx, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = SidecarMetrics()
    pusher = Pusher(lua_nginx.dynamic, metrics)
    peers = tuple(Peer("127.0.0.1", lua_nginx.backends[b]) for b in ("b1", "b2"))
    state = {"primes": peers, "other": (Peer("::1", 8080, weight=3, backup=True),), "empty": ()}
    decoded: list[bytes] = []
    decode = client_module.decode

    def counted(data: bytes, where: str) -> object:
        decoded.append(data)
        return decode(data, where)

    monkeypatch.setattr(client_module, "decode", counted)

    def repairs() -> float | None:
        return metrics.registry.get_sample_value("upstreams_dynamic_repairs_total")

    async def scenario() -> None:
        generation, _ = pusher.stage(state)
        await pusher.push(state, state, generation)
        pusher.commit(state, generation)
        assert not await pusher.sync()
        assert decoded == [] and repairs() == 0  # equal bytes: nothing decoded
        # One weight, behind the sidecar's back: the same names, the same addresses.
        changed = {name: [p.as_json() for p in ps] for name, ps in state.items()}
        changed["other"][0]["weight"] = 4
        assert (await asyncio.to_thread(lua_nginx.push, changed, True, 2**52))[0] == 200
        assert not await pusher.sync()
        assert len(decoded) == 1 and repairs() == 1
        assert not await pusher.sync()
        assert len(decoded) == 1 and repairs() == 1  # repaired: equal bytes again
        await pusher.close()

    asyncio.run(scenario())
    held = lua_nginx.state()
    assert held["generation"] > 2**52
    assert held["upstreams"] == {name: [p.as_json() for p in ps] for name, ps in state.items()}


def test_the_state_file_holds_a_state_only_as_the_sidecar_writes_it(tmp_path: Path) -> None:
    config = DynamicConfig(enabled=True, state_file=tmp_path / "state.json")
    state = {"b": (Peer("127.0.0.1", 80, weight=2),), "a": ()}
    assert not holds(config, Encoder(), state)  # no file yet
    config.state_file.write_bytes(encode(1733000000123, state, full=True))
    assert holds(config, Encoder(), state)
    assert not holds(config, Encoder(), {**state, "a": (Peer("127.0.0.1", 81),)})
    assert not holds(config, Encoder(), {"b": state["b"]})
    doc = {
        "generation": 5,
        "full": True,
        "upstreams": {n: [p.as_json() for p in ps] for n, ps in state.items()},
    }
    config.state_file.write_text(json.dumps(doc))  # the same peers, spelled otherwise: written again
    assert not holds(config, Encoder(), state)
