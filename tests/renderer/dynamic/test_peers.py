"""Rendered files read back into peers, and the server-only plan: tables, then random texts (hypothesis)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renderer.dynamic import peers, texts
from renderer.dynamic.peers import Peer, hook_line
from renderer.dynamic.plan import plan
from renderer.dynamic.texts import parse

DEST = Path("/out/upstreams.conf")


def block(name: str, servers: list[str], *, hooked: bool = True, extra: str = "") -> str:
    lines = [f"upstream {name} {{", *(f"    server {s};" for s in servers)]
    if hooked:
        lines.append(hook_line(name))
    if extra:
        lines.append(f"    {extra}")
    return "\n".join([*lines, "}", ""])


def text(
    *blocks: str,
    tail: str = "server {\n    listen 127.0.0.1:8080;\n    location / { proxy_pass http://a; }\n}\n",
) -> str:
    return "".join(blocks) + tail


def planned(old: str, new: str, *, hooked_only: bool = True):  # type: ignore[no-untyped-def]
    return plan({DEST: parse(old)}, {DEST: parse(new)}, hooked_only=hooked_only)


@pytest.mark.parametrize(
    ("line", "peer"),
    [
        ("127.0.0.1:8081", Peer("127.0.0.1", 8081)),
        ("127.0.0.1:8082 weight=3", Peer("127.0.0.1", 8082, 3)),
        ("127.0.0.1:8083 backup", Peer("127.0.0.1", 8083, backup=True)),
        ("127.0.0.1:8084 weight=2 max_fails=3 fail_timeout=10s backup", Peer("127.0.0.1", 8084, 2, True)),
        ("[::1]:9000", Peer("::1", 9000)),
        ("[0:0::1]:9000", Peer("::1", 9000)),  # as nginx reads it: normalised
        ("127.0.0.1", Peer("127.0.0.1", 80)),  # nginx's default port
    ],
)
def test_server_lines_become_peers(line: str, peer: Peer) -> None:
    (upstream,) = parse(text(block("a", [line]))).upstreams
    assert upstream.hooked and upstream.safe
    assert upstream.peers == (peer,)


@pytest.mark.parametrize(
    "line",
    [
        "web.example:80",  # a host name: nginx resolves it at load, the balancer cannot
        "127.1:80",  # not a dotted quad: nginx would resolve it as a name
        "127.0.0.01:80",
        "::1:80",  # IPv6 without brackets
        "[127.0.0.1]:80",
        "[fe80::1%eth0]:80",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:80 weight=0",
        "127.0.0.1:80 weight=1001",
        "127.0.0.1:80 weight=2 weight=3",
        "127.0.0.1:80 weight=",
        "127.0.0.1:80 weight=x",
        "127.0.0.1:80 resolve",
        "127.0.0.1:80 max_conns=5",
        "127.0.0.1:80 slow_start=30s",
        "unix:/run/app.sock",
    ],
)
def test_servers_the_plan_cannot_vouch_for_make_the_upstream_unsafe(line: str) -> None:
    (upstream,) = parse(text(block("a", ["127.0.0.1:81", line]))).upstreams
    assert not upstream.safe
    assert planned(text(block("a", ["127.0.0.1:81"])), text(block("a", ["127.0.0.1:81", line]))) is None


def test_down_lines_are_dropped_and_the_empty_upstream_has_no_peers() -> None:
    (upstream,) = parse(text(block("a", ["127.0.0.1:1 down"]))).upstreams
    assert upstream.safe and upstream.peers == ()


def test_the_hook_must_be_exactly_the_macro_librarys_line() -> None:
    other = text(
        block(
            "a",
            ["127.0.0.1:81"],
            hooked=False,
            extra='balancer_by_lua_block { require("upstreams.balancer").balance("b") }',
        )
    )
    # Another upstream's hook is a block we do not read: not an upstream the plan may touch.
    assert not any(u.hooked for u in parse(other).upstreams)


def test_a_server_only_change_plans_the_changed_upstreams_and_the_full_state() -> None:
    old = text(block("a", ["127.0.0.1:81", "127.0.0.1:82"]), block("b", ["127.0.0.1:91"]))
    new = text(block("a", ["127.0.0.1:82 weight=2"]), block("b", ["127.0.0.1:91"]))
    result = planned(old, new)
    assert result is not None
    assert dict(result.changed) == {"a": (Peer("127.0.0.1", 82, 2),)}
    assert dict(result.state) == {"a": (Peer("127.0.0.1", 82, 2),), "b": (Peer("127.0.0.1", 91),)}


def test_an_upstream_with_a_host_name_is_left_out_of_runtime_state() -> None:
    old = text(block("a", ["127.0.0.1:81"]), block("h", ["web.example:80"]))
    new = text(block("a", ["127.0.0.1:82"]), block("h", ["web.example:80"]))
    result = planned(old, new)
    assert result is not None and dict(result.state) == {"a": (Peer("127.0.0.1", 82),)}


A81 = block("a", ["127.0.0.1:81"])
STRUCTURAL = [
    # an upstream added, removed, renamed
    (text(A81), text(A81, block("b", ["127.0.0.1:82"]))),
    (text(A81, block("b", ["127.0.0.1:82"])), text(A81)),
    (text(A81), text(block("c", ["127.0.0.1:81"]))),
    # a non-server line changed, with or without a server change
    (
        text(block("a", ["127.0.0.1:81"], extra="keepalive 16;")),
        text(block("a", ["127.0.0.1:82"], extra="keepalive 32;")),
    ),
    (text(A81), text(block("a", ["127.0.0.1:82"]), tail="# edited\n")),
    # the hook appears or goes (a template edit)
    (text(block("a", ["127.0.0.1:81"], hooked=False)), text(block("a", ["127.0.0.1:82"]))),
    (text(A81), text(block("a", ["127.0.0.1:82"], hooked=False))),
    # every server line gone: nginx refuses an upstream without one
    (text(A81), text(block("a", []))),
    # server lines outside an upstream
    ("server 127.0.0.1:81;\n", "server 127.0.0.1:82;\n"),
    # backup under a method that refuses it
    (
        text(block("a", ["127.0.0.1:81"], extra="hash $uri;")),
        text(block("a", ["127.0.0.1:81 backup"], extra="hash $uri;")),
    ),
]


@pytest.mark.parametrize(("old", "new"), STRUCTURAL)
def test_anything_but_servers_changing_is_structural_in_both_modes(old: str, new: str) -> None:
    assert planned(old, new) is None
    assert planned(old, new, hooked_only=False) is None


def test_an_upstream_without_the_hook_changes_by_reload_only() -> None:
    old, new = (
        text(block("a", ["127.0.0.1:81"], hooked=False)),
        text(block("a", ["127.0.0.1:82"], hooked=False)),
    )
    assert planned(old, new) is None  # dynamic mode: not pushable
    assert planned(old, new, hooked_only=False) is not None  # classic mode: a reload without the check


def test_classic_mode_plans_any_upstream_block() -> None:
    old = text(block("a", ["127.0.0.1:81"], hooked=False, extra="least_conn;"))
    new = text(block("a", ["127.0.0.1:82 backup", "127.0.0.1:83"], hooked=False, extra="least_conn;"))
    assert planned(old, new) is None
    result = planned(old, new, hooked_only=False)
    assert result is not None and list(result.changed) == ["a"] and dict(result.state) == {}


def test_a_first_render_or_a_destination_gone_is_structural() -> None:
    new = {DEST: parse(text(block("a", ["127.0.0.1:81"])))}
    assert plan({DEST: None}, new, hooked_only=True) is None
    assert plan({}, new, hooked_only=True) is None


def test_a_name_the_lua_side_refuses_is_not_pushed_but_reloads_unchecked_in_classic_mode() -> None:
    old, new = text(block("a:b", ["127.0.0.1:81"])), text(block("a:b", ["127.0.0.1:82"]))
    assert planned(old, new) is None
    assert not parse(old).upstreams[0].pushable
    assert planned(old, new, hooked_only=False) is not None


def test_two_hooked_upstreams_with_one_name_never_plan() -> None:
    old = text(block("a", ["127.0.0.1:81"]), block("A", ["127.0.0.1:82"]))
    new = text(block("a", ["127.0.0.1:83"]), block("A", ["127.0.0.1:82"]))
    assert planned(old, new) is None


# Random texts ------------------------------------------------------------------------------------

_NAMES = st.text("abcdefghij_.-0123456789", min_size=1, max_size=8)
_PEERS = st.lists(
    st.builds(
        Peer,
        address=st.sampled_from(["127.0.0.1", "127.0.0.2", "127.1.2.3", "::1"]),
        port=st.integers(1, 65535),
        weight=st.integers(1, 1000),
        backup=st.booleans(),
    ),
    max_size=5,
)


def line_of(peer: Peer) -> str:
    host = f"[{peer.address}]" if ":" in peer.address else peer.address
    params = (f" weight={peer.weight}" if peer.weight != 1 else "") + (" backup" if peer.backup else "")
    return f"{host}:{peer.port}{params}"


def render(upstreams: dict[str, list[Peer]], keepalive: int = 16) -> str:
    blocks = [
        block(n, [line_of(p) for p in ps] or ["127.0.0.1:1 down"], extra=f"keepalive {keepalive};")
        for n, ps in upstreams.items()
    ]
    return text(*blocks)


_CATALOG = st.dictionaries(_NAMES.map(lambda n: "u" + n.lower()), _PEERS, min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(_CATALOG, st.data())
def test_a_random_server_only_change_always_plans(
    catalog: dict[str, list[Peer]], data: st.DataObject
) -> None:
    changed = {
        name: data.draw(_PEERS) if data.draw(st.booleans()) else peers for name, peers in catalog.items()
    }
    result = planned(render(catalog), render(changed))
    if changed == catalog:
        assert result is None  # nothing to carry: the checked path, as for any doubt
        return
    assert result is not None
    assert dict(result.state) == {n: tuple(ps) for n, ps in changed.items()}
    assert set(result.changed) <= set(catalog)


@settings(max_examples=300, deadline=None)
@given(_CATALOG, st.data())
def test_any_other_random_edit_never_plans(catalog: dict[str, list[Peer]], data: st.DataObject) -> None:
    old = render(catalog)
    # Positions outside every server line: the edit touches structure only.
    server_chars = {
        i
        for line_start, line in _lines(old)
        if line.lstrip().startswith("server ") and line.endswith(";") and "{" not in line
        for i in range(line_start, line_start + len(line) + 1)
    }
    positions = [i for i in range(len(old)) if i not in server_chars]
    at = data.draw(st.sampled_from(positions))
    kind = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    char = data.draw(st.sampled_from(list("x;{} \n#9")))
    if kind == "replace" and old[at] == char:
        char = "y"
    new = old[:at] + ("" if kind == "delete" else char) + old[at + (0 if kind == "insert" else 1) :]
    assert planned(old, new) is None, (old, new)


def _lines(text: str) -> list[tuple[int, str]]:
    out, at = [], 0
    for line in text.split("\n"):
        out.append((at, line))
        at += len(line) + 1
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list('upstream server{};\n #:.[]127a_=wigh0backupdown\t\r"')), max_size=300
    )
)
def test_parsing_random_text_never_raises(garbage: str) -> None:
    parsed = parse(garbage)
    parsed.skeleton(hooked_only=True)
    planned(garbage, garbage + "upstream x {\n    server 127.0.0.1;\n}\n")


@settings(max_examples=300, deadline=None)
@given(_CATALOG, st.data())
def test_reading_against_the_previous_parse_equals_reading_from_scratch(
    catalog: dict[str, list[Peer]], data: st.DataObject
) -> None:
    old = render(catalog)
    if data.draw(st.booleans()):  # a server-only change of some upstreams
        changed = {n: data.draw(_PEERS) if data.draw(st.booleans()) else ps for n, ps in catalog.items()}
        new = render(changed)
    else:  # any edit at all
        at = data.draw(st.integers(0, len(old)))
        cut = data.draw(st.integers(0, 3))
        new = (
            old[:at]
            + data.draw(st.text(alphabet=list("x;{} \n#9}server 127.0.0.1:5"), max_size=12))
            + old[at + cut :]
        )
    previous = parse(old)
    assert previous.state is not None  # computed, so the new parse may derive its own from it
    again = parse(new, previous)
    fresh = parse(new)
    assert again == fresh
    assert again.state == fresh.state
    assert again.spans == fresh.spans


@settings(max_examples=200, deadline=None)
@given(_CATALOG, st.data())
def test_a_plan_from_a_parse_read_against_the_last_equals_one_from_fresh_parses(
    catalog: dict[str, list[Peer]], data: st.DataObject
) -> None:
    # The plan then looks only at the blocks read again; against any other parse it walks them all.
    changed = {n: data.draw(_PEERS) if data.draw(st.booleans()) else ps for n, ps in catalog.items()}
    old, new = render(catalog), render(changed, keepalive=data.draw(st.sampled_from([16, 32])))
    hooked_only = data.draw(st.booleans())
    previous = parse(old)
    assert previous.state is not None
    again = parse(new, previous)
    expected = plan({DEST: parse(old)}, {DEST: parse(new)}, hooked_only=hooked_only)
    assert plan({DEST: previous}, {DEST: again}, hooked_only=hooked_only) == expected
    assert plan({DEST: parse(old)}, {DEST: again}, hooked_only=hooked_only) == expected


@pytest.mark.parametrize("stride", [texts._STRIDE, 7, 64])
def test_a_flip_anywhere_in_a_large_text_reads_as_from_scratch(
    monkeypatch: pytest.MonkeyPatch, stride: int
) -> None:
    # The difference is looked for in strides, then steps, then characters: each edge of each.
    monkeypatch.setattr(texts, "_STRIDE", stride)
    monkeypatch.setattr(texts, "_STEP", min(stride, texts._STEP) if stride < 100 else texts._STEP)
    upstreams = {f"u{i:04d}": [Peer("127.0.0.1", 8000 + i), Peer("127.0.0.2", 8000 + i)] for i in range(900)}
    previous = parse(render(upstreams))
    assert len(previous.text) > 2 * texts._STRIDE
    for k in (0, 1, 299, 300, 301, 444, 898, 899):
        changed = {**upstreams, f"u{k:04d}": upstreams[f"u{k:04d}"][:1]}
        if k % 2:
            changed[f"u{(k * 7) % 900:04d}"] = [Peer("127.0.0.3", 9999, 3)]
        again = parse(render(changed), previous)
        fresh = parse(render(changed))
        assert again == fresh and again.spans == fresh.spans and again.state == fresh.state
        assert again.gaps is previous.gaps


def test_a_flip_reads_only_the_block_it_changed() -> None:
    upstreams = {f"u{i}": [Peer("127.0.0.1", 8000 + i), Peer("127.0.0.2", 8000 + i)] for i in range(50)}
    previous = parse(render(upstreams))
    upstreams["u17"] = upstreams["u17"][:1]
    again = parse(render(upstreams), previous)
    assert again.gaps is previous.gaps  # the text around the blocks was not read again
    same = [a is b for a, b in zip(previous.upstreams, again.upstreams, strict=True)]
    assert same.count(False) == 1 and not same[17]
    assert again.state == parse(render(upstreams)).state


def test_a_flip_to_or_from_the_empty_upstream_is_server_only() -> None:
    empty = (
        "upstream a {\n    # no healthy instance: nginx answers 502 at once\n    server 127.0.0.1:1 down;\n"
    )
    empty += hook_line("a") + "\n    keepalive 16;\n}\n"
    full = text(block("a", ["127.0.0.1:81"], extra="keepalive 16;"), tail="")
    assert planned(full, empty) is not None and dict(planned(full, empty).changed) == {"a": ()}  # type: ignore[union-attr]
    assert dict(planned(empty, full).changed) == {"a": (Peer("127.0.0.1", 81),)}  # type: ignore[union-attr]


def test_a_quote_in_an_upstream_body_makes_it_unreadable() -> None:
    assert parse(text(block("a", ["127.0.0.1:81"], extra='hash "$x";'))).upstreams == ()


_TOKENS = [
    "upstream",
    " a",
    " {",
    "}",
    "\n",
    "    server ",
    "127.0.0.1",
    ":80",
    "[::1]",
    ";",
    " weight=",
    "0",
    "7",
]
_TOKENS += [" backup", " down", " max_fails=", " fail_timeout=", "#", '"', "\t", hook_line("a"), "\r"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=60), st.lists(st.sampled_from(_TOKENS), max_size=60))
def test_parsing_random_tokens_never_raises_and_rereading_agrees(first: list[str], second: list[str]) -> None:
    old, new = "".join(first), "".join(first[: len(first) // 2] + second)
    previous = parse(old)
    assert parse(new, previous) == parse(new)
    planned(old, new)
    planned(old, new, hooked_only=False)


@given(
    st.lists(
        st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "007", "", "x", "\u0661"])),
        min_size=3,
        max_size=5,
    )
)
def test_the_ipv4_shortcut_agrees_with_ipaddress(parts: list[str]) -> None:
    """Plain IPv4 literals skip ipaddress; anything else still goes through it: the answer is the same."""
    host = ".".join(parts)
    try:
        ip = ipaddress.ip_address(host)
        expected = str(ip) == host and ip.version == 4
    except ValueError:
        expected = False
    assert peers._plain_v4(host) == expected
    assert peers._ip_port(f"{host}:8080") == ((host, 8080) if expected else None)
