"""The endpoint client keeps one connection open, and a request on one nginx has just closed goes out again.

Connections are counted by nginx itself: the endpoint's access log, with ``$connection`` (nginx's serial
number of the connection, unique across workers) and ``$connection_requests``, for each request.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from plumbing.errors import DynamicRefused
from renderer.dynamic.client import Tried
from renderer.dynamic.drift import held_already
from renderer.dynamic.peers import Peer
from renderer.dynamic.pusher import Pusher
from renderer.metrics import SidecarMetrics
from tests.renderer.dynamic.conftest import LuaNginx, assert_no_lua_errors
from tests.support.waiting import wait_until

FORMAT = "log_format endpoint '$connection $connection_requests $request_method $status';\n"


def logged(tmp_path: Path, unix: bool) -> LuaNginx:
    """nginx whose endpoint logs each request's connection (the snippet's own ``access_log off`` replaced)."""
    nginx = LuaNginx(tmp_path / "nginx", unix=tmp_path / "peers.sock" if unix else None)
    log = nginx.server.dir / "logs" / "endpoint.log"
    snippet = nginx.server.snippet
    assert snippet.count("access_log off;") == 1
    nginx.server.snippet = FORMAT + snippet.replace("access_log off;", f"access_log {log} endpoint;")
    nginx.write_upstream(["b1", "b2"])
    return nginx


@pytest.fixture(params=["tcp", "unix"])
def nginx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LuaNginx]:
    server = logged(tmp_path, request.param == "unix")
    server.start()
    yield server
    server.stop()
    assert_no_lua_errors(server)


def requests(nginx: LuaNginx) -> list[tuple[int, int, str, int]]:
    """The endpoint's requests so far: connection, its request number, method, status."""
    path = nginx.server.dir / "logs" / "endpoint.log"
    lines = path.read_text().split("\n") if path.exists() else []
    return [(int(c), int(n), m, int(s)) for c, n, m, s in (line.split() for line in lines if line)]


def posts(nginx: LuaNginx) -> list[int]:
    """The connection of each POST to the endpoint so far."""
    return [c for c, _, m, _ in requests(nginx) if m == "POST"]


def state(nginx: LuaNginx, *backends: str) -> dict[str, tuple[Peer, ...]]:
    return {"primes": tuple(Peer("127.0.0.1", nginx.backends[b]) for b in backends)}


def workers(nginx: LuaNginx) -> set[str]:
    assert nginx.server.proc is not None
    pid = nginx.server.proc.pid
    try:
        return set(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    except OSError:
        return set()


def reload_and_wait(nginx: LuaNginx) -> None:
    """SIGHUP, then wait (blocking) until every old worker has exited, and with it its idle connections."""
    assert nginx.server.proc is not None
    old = workers(nginx)
    nginx.server.proc.send_signal(signal.SIGHUP)
    wait_until(
        lambda: not old & workers(nginx) and len(workers(nginx)) == nginx.server.worker_count,
        what="the old workers gone",
    )


async def flip(pusher: Pusher, new: dict[str, tuple[Peer, ...]]) -> None:
    """What apply does for a server-only change: stage, push, commit."""
    generation, _ = pusher.stage(new)
    await pusher.push(new, new, generation)
    pusher.commit(new, generation)


def test_pushes_and_syncs_in_a_row_use_one_connection(nginx: LuaNginx) -> None:
    pusher = Pusher(nginx.dynamic, SidecarMetrics())
    sets = [state(nginx, "b1"), state(nginx, "b2"), state(nginx, "b1", "b2")]

    async def scenario() -> None:
        for i in range(30):
            await flip(pusher, sets[i % 3])
            if i % 10 == 9:
                assert not await pusher.sync()  # the drift check's GET, on the same connection
        await pusher.close()

    asyncio.run(scenario())
    # nginx logs a request just after its answer: wait for the last one.
    wait_until(lambda: len(posts(nginx)) == 30, what="the 30 pushes logged")
    used = set(posts(nginx))
    assert len(used) == 1, requests(nginx)
    # LuaNginx.start's GET had a connection of its own.
    wait_until(lambda: len([c for c, *_ in requests(nginx) if c in used]) == 33, what="the 3 syncs logged")
    mine = [(n, m, s) for c, n, m, s in requests(nginx) if c in used]
    assert [n for n, _, _ in mine] == list(range(1, 34))
    assert [m for _, m, _ in mine].count("GET") == 3 and {s for _, _, s in mine} == {200}
    assert nginx.state()["upstreams"]["primes"][0]["port"] == nginx.backends["b1"]


def test_a_push_right_after_a_reload_goes_out_again_on_a_new_connection(
    nginx: LuaNginx, caplog: pytest.LogCaptureFixture
) -> None:
    """The old worker closed the idle connection as it exited; the event loop has not yet seen it (it was
    busy), so the push takes that connection from the pool, which fails before any answer."""
    caplog.set_level(logging.DEBUG, logger="renderer.dynamic")
    metrics = SidecarMetrics()
    pusher = Pusher(nginx.dynamic, metrics)

    async def scenario() -> None:
        await flip(pusher, state(nginx, "b1"))
        reload_and_wait(nginx)  # blocking: the loop cannot notice the connection closing meanwhile
        await flip(pusher, state(nginx, "b2"))
        await pusher.close()

    asyncio.run(scenario())
    assert nginx.state()["upstreams"]["primes"] == [nginx.peer("b2", weight=1, backup=False)]
    assert nginx.state()["generation"] == pusher.generation
    assert "nginx closed the idle connection" in caplog.text  # the path under test was taken
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert metrics.registry.get_sample_value("upstreams_dynamic_pushes_total", {"kind": "changed"}) == 2
    wait_until(lambda: len(posts(nginx)) == 2, what="both pushes logged")
    first, second = posts(nginx)
    assert first != second  # the second one never reached the old worker


def test_two_idle_connections_closed_by_a_reload_fail_no_read_and_no_push(
    nginx: LuaNginx, caplog: pytest.LogCaptureFixture
) -> None:
    """A push while a sync reads opens a second connection, and both stay in the pool."""
    pusher = Pusher(nginx.dynamic, SidecarMetrics())

    async def scenario() -> None:
        generation, _ = pusher.stage(state(nginx, "b1"))
        await asyncio.gather(pusher.push(state(nginx, "b1"), {}, generation), pusher._endpoint().fetch_text())
        reload_and_wait(nginx)  # blocking, as above
        assert (await pusher._endpoint().fetch()).generation == generation  # the re-sync's first read
        await flip(pusher, state(nginx, "b2"))
        assert (await pusher._endpoint().fetch()).upstreams == state(nginx, "b2")
        await pusher.close()

    asyncio.run(scenario())
    wait_until(lambda: len(posts(nginx)) == 2, what="both pushes logged")
    assert len({c for c, *_ in requests(nginx)}) >= 4  # start's GET, the two overlapping, one after
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_a_push_of_the_generation_nginx_holds_is_done(nginx: LuaNginx) -> None:
    """What nginx answers a POST sent again after it had applied it: 409 with that same generation."""
    metrics = SidecarMetrics()
    pusher = Pusher(nginx.dynamic, metrics)
    new = state(nginx, "b2")

    async def scenario() -> None:
        generation, _ = pusher.stage(new)
        assert nginx.push({"primes": [nginx.peer("b2")]}, generation=generation)[0] == 200  # "the first try"
        await pusher.push(new, new, generation)  # refused 409 with current == generation: no fallback
        assert pusher.last_error is None
        await pusher.close()

    asyncio.run(scenario())
    assert metrics.registry.get_sample_value("upstreams_dynamic_pushes_total", {"kind": "changed"}) == 1


def refused(status: int, current: int | None) -> DynamicRefused:
    return DynamicRefused("nginx's update endpoint refused the update.", status=status, current=current)


def test_a_refusal_of_the_generation_nginx_holds_counts_as_done() -> None:
    assert held_already(refused(409, 42), 42)
    assert not held_already(refused(409, 43), 42)  # newer: the pusher moves past it
    assert not held_already(refused(409, None), 42)
    assert not held_already(refused(507, 42), 42)  # no room: nothing applied


def tried(reused: bool = True, answered: bool = False) -> Tried:
    return Tried(reused=reused, answered=answered)


def test_only_a_reused_connection_closed_before_an_answer_is_tried_again() -> None:
    closed = aiohttp.ServerDisconnectedError()
    reset = aiohttp.ClientOSError(104, "Connection reset by peer")
    assert tried().closed_idle(closed) and tried().closed_idle(reset)
    assert not tried(reused=False).closed_idle(closed)  # a new connection nginx closed: it is down
    assert not tried(answered=True).closed_idle(closed)  # nginx answered: it may have applied it
    assert not tried().closed_idle(TimeoutError())
    assert not tried().closed_idle(aiohttp.ClientPayloadError("cut short"))
