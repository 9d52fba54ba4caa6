"""Which way a change goes: pushed, reloaded without the check, or checked and reloaded (one table)."""

from __future__ import annotations

from pathlib import Path

import pytest

from renderer.apply import Outcome
from renderer.dynamic.peers import Peer, hook_line
from renderer.dynamic.route import route
from renderer.dynamic.texts import parse
from renderer.outcome import Verdict, judge

DEST = Path("/out/upstreams.conf")


def file(servers: list[str], *, hooked: bool = True, tail: str = "") -> str:
    body = "".join(f"    server {s};\n" for s in servers)
    return f"upstream a {{\n{body}{hook_line('a') + chr(10) if hooked else ''}}}\n{tail}"


SERVERS = (file(["127.0.0.1:81"]), file(["127.0.0.1:82"]))
UNHOOKED = (file(["127.0.0.1:81"], hooked=False), file(["127.0.0.1:82"], hooked=False))
STRUCTURAL = (file(["127.0.0.1:81"]), file(["127.0.0.1:82"], tail="# edited\n"))
HOST_NAME = (file(["127.0.0.1:81"]), file(["web.example:80"]))


@pytest.mark.parametrize(
    ("texts", "dynamic", "always", "proven", "pushed", "checked"),
    [
        (SERVERS, True, False, True, True, False),
        (SERVERS, True, True, True, True, False),  # a push reloads nothing: no check to run
        (SERVERS, False, False, True, False, False),
        (SERVERS, False, True, True, False, True),
        (UNHOOKED, True, False, True, False, False),
        (STRUCTURAL, True, False, True, False, True),
        (STRUCTURAL, False, False, True, False, True),
        (HOST_NAME, True, False, True, False, True),
        (HOST_NAME, False, False, True, False, True),
        (SERVERS, True, False, False, False, True),  # a first render is checked
        (SERVERS, False, False, False, False, True),
    ],
)
def test_the_route_of_a_change(
    texts: tuple[str, str], dynamic: bool, always: bool, proven: bool, pushed: bool, checked: bool
) -> None:
    way = route(
        {DEST: parse(texts[0])}, {DEST: parse(texts[1])}, dynamic=dynamic, check_always=always, proven=proven
    )
    assert (way.push is not None, way.check) == (pushed, checked)
    if pushed:
        assert way.push == {"a": (Peer("127.0.0.1", 82),)}
    assert (way.state is not None) == dynamic


def test_the_state_leaves_out_an_upstream_with_a_host_name() -> None:
    way = route(
        {DEST: None}, {DEST: parse(file(["web.example:80"]))}, dynamic=True, check_always=False, proven=True
    )
    assert way.state == {} and way.check


def test_a_push_is_a_success_without_a_reload() -> None:
    assert judge(Outcome.PUSHED, once=False) == Verdict(succeeded=True, pushed=True, ready=True)
