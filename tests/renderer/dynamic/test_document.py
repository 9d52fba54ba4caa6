"""The peer document, validated in the sidecar by the Lua side's rules: hostile data is never pushed."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plumbing.errors import DynamicUpdateInvalid
from renderer.dynamic.document import MAX_UPSTREAMS, Encoder, decode, encode, next_generation
from renderer.dynamic.peers import Peer

GOOD = {"a": (Peer("127.0.0.1", 8081), Peer("::1", 8082, 3, True)), "EMPTY": ()}


def test_a_document_round_trips() -> None:
    state = decode(encode(17, GOOD, full=True), "test")
    assert (state.generation, state.full, dict(state.upstreams)) == (17, True, GOOD)
    assert json.loads(encode(17, GOOD, full=False))["upstreams"]["EMPTY"] == []


def test_generations_move_past_the_last_and_the_clock() -> None:
    assert next_generation(5, 1000) == 1000
    assert next_generation(2000, 1000) == 2001  # a clock that went back still moves forward


@pytest.mark.parametrize(
    ("upstreams", "says"),
    [
        ({"a b": ()}, "upstream name"),
        ({"": ()}, "upstream name"),
        ({"x" * 1025: ()}, "upstream name"),
        ({"a\n}": ()}, "upstream name"),
        ({"a": (Peer("evil.example", 80),)}, "not an IP literal"),
        ({"a": (Peer("127.0.0.1;", 80),)}, "not an IP literal"),
        ({"a": (Peer("fe80::1%eth0", 80),)}, "not an IP literal"),
        ({"a": (Peer("0:0::1", 80),)}, "not an IP literal"),  # one spelling only
        ({"a": (Peer("127.0.0.1", 0),)}, "port"),
        ({"a": (Peer("127.0.0.1", 65536),)}, "port"),
        ({"a": (Peer("127.0.0.1", True),)}, "port"),  # type: ignore[arg-type]
        ({"a": (Peer("127.0.0.1", 80, 0),)}, "weight"),
        ({"a": (Peer("127.0.0.1", 80, 1001),)}, "weight"),
        ({"a": (Peer("127.0.0.1", 80, 1, "yes"),)}, "backup"),  # type: ignore[arg-type]
        ({"a": (Peer("127.0.0.1", 80),) * 10_001}, "over the cap"),
    ],
)
def test_hostile_updates_are_refused_before_anything_is_sent(
    upstreams: dict[str, tuple[Peer, ...]], says: str
) -> None:
    with pytest.raises(DynamicUpdateInvalid, match=says):
        encode(1, upstreams, full=True)


def test_too_many_upstreams_are_refused() -> None:
    with pytest.raises(DynamicUpdateInvalid, match="over the cap"):
        encode(1, {f"u{i}": () for i in range(MAX_UPSTREAMS + 1)}, full=True)


@pytest.mark.parametrize("generation", [-1, 2**53, 1.5, True, "1", None])
def test_generations_are_integers_lua_holds_exactly(generation: object) -> None:
    with pytest.raises(DynamicUpdateInvalid, match="generation"):
        encode(generation, {}, full=True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "answer",
    [
        b"not json",
        b"[]",
        b'{"generation": 1}',
        b'{"generation": 1, "upstreams": {"a": {}}}',
        b'{"generation": 1, "upstreams": {"a": [{"address": "127.0.0.1", "port": 80, "extra": 1}]}}',
        b'{"generation": 1, "full": "yes", "upstreams": {}}',
    ],
)
def test_answers_read_back_are_validated_too(answer: bytes) -> None:
    with pytest.raises(DynamicUpdateInvalid, match="the answer"):
        decode(answer, "the answer")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["generation", "full", "upstreams", "x"]), _JSON))
def test_whatever_decodes_is_a_valid_document(doc: dict[str, object]) -> None:
    try:
        state = decode(json.dumps(doc).encode(), "random")
    except DynamicUpdateInvalid:
        return
    assert decode(encode(state.generation, state.upstreams, full=state.full), "again") == state


def test_a_state_encoded_from_the_last_one_and_its_change_equals_one_encoded_whole() -> None:
    first = {f"u{i}": (Peer("127.0.0.1", 8000 + i),) for i in range(20)}
    changed = {"u7": (Peer("127.0.0.2", 9000, 2),), "u3": ()}
    second = {**first, **changed}
    encoder = Encoder()
    encoder.encode(1, first, full=True)
    assert encoder.encode(2, second, full=True, base=first, changed=changed) == encode(2, second, full=True)
    # Not the state it encoded last (a round restored in between): encoded whole, still right.
    assert encoder.encode(3, first, full=True, base=dict(second), changed={}) == encode(3, first, full=True)
    with pytest.raises(DynamicUpdateInvalid):  # what changed is checked as ever
        encoder.encode(4, first, full=True, base=first, changed={"u1": (Peer("evil.example", 80),)})
    # ... and a refusal leaves what it encodes next as it was.
    mixed = {"u2": (Peer("127.0.0.3", 1),), "u1": (Peer("evil.example", 80),)}
    with pytest.raises(DynamicUpdateInvalid):
        encoder.encode(5, {**first, **mixed}, full=True, base=first, changed=mixed)
    assert encoder.encode(6, second, full=True, base=first, changed=changed) == encode(6, second, full=True)


def test_the_size_cap_holds_for_a_state_encoded_from_its_change(monkeypatch: pytest.MonkeyPatch) -> None:
    # The delta path keeps the document's size as parts are replaced, never summing them again.
    import renderer.dynamic.document as document

    first = {f"u{i}": (Peer("127.0.0.1", 8000 + i),) for i in range(20)}
    grown = {"u5": tuple(Peer("127.0.0.1", 9000 + k) for k in range(30))}
    encoder = Encoder()
    encoder.encode(1, first, full=True)
    second = {**first, **grown}
    size = len(encode(2, second, full=True))
    monkeypatch.setattr(document, "MAX_BODY", size - 1)
    with pytest.raises(DynamicUpdateInvalid, match=f"{size} bytes"):
        encoder.encode(2, second, full=True, base=first, changed=grown)
    monkeypatch.setattr(document, "MAX_BODY", size)
    assert encoder.encode(3, second, full=True, base=first, changed=grown) == encode(3, second, full=True)
    back = {"u5": first["u5"]}  # and shrinking again counts what went
    assert len(encoder.encode(4, first, full=True, base=second, changed=back)) == len(
        encode(4, first, full=True)
    )
    monkeypatch.setattr(document, "MAX_BODY", len(encode(5, first, full=True)))
    assert encoder.encode(5, {**first}, full=True, base=first, changed={}) == encode(5, first, full=True)
