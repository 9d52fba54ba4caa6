"""The pusher against nginx's real endpoint: generations, a newer one held by nginx, drift found by the loop."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from plumbing.errors import DynamicPushFailed, DynamicRefused, DynamicUpdateInvalid
from renderer.config import DynamicConfig
from renderer.dynamic import pusher as pusher_module
from renderer.dynamic.peers import Peer
from renderer.dynamic.pusher import Pusher
from renderer.metrics import SidecarMetrics
from tests.renderer.dynamic.conftest import LuaNginx
from tests.support.waiting import wait_until


def peers(nginx: LuaNginx, *backends: str) -> tuple[Peer, ...]:
    return tuple(Peer("127.0.0.1", nginx.backends[b]) for b in backends)


def ports(nginx: LuaNginx) -> list[int]:
    return [p["port"] for p in nginx.state()["upstreams"].get("primes", [])]


def test_a_push_past_a_newer_generation_nginx_holds(lua_nginx: LuaNginx) -> None:
    pusher = Pusher(lua_nginx.dynamic, SidecarMetrics(), now_ms=lambda: 1000)
    state = {"primes": peers(lua_nginx, "b2")}

    async def scenario() -> None:
        assert lua_nginx.push({"primes": [lua_nginx.peer("b4")]}, generation=5000)[0] == 200
        generation, _ = pusher.stage(state)
        assert generation == 1000  # behind nginx's 5000: refused as stale, then pushed in full past it
        await pusher.push(state, state, generation)
        await pusher.close()

    asyncio.run(scenario())
    assert ports(lua_nginx) == [lua_nginx.backends["b2"]]
    assert lua_nginx.state()["generation"] == 5001
    assert pusher.metrics.registry.get_sample_value("upstreams_dynamic_pushes_total", {"kind": "full"}) == 1


def test_a_change_before_a_reload_shows_is_pushed_whole(lua_nginx: LuaNginx) -> None:
    """Between a reload and its workers loading the state file, nginx may hold anything (nothing, at
    a start): a delta would patch that, and the workers would then refuse the older state file."""
    pusher = Pusher(lua_nginx.dynamic, SidecarMetrics())
    before = {"primes": peers(lua_nginx, "b1", "b2"), "others": peers(lua_nginx, "b3")}
    after = {"primes": peers(lua_nginx, "b1"), "others": peers(lua_nginx, "b3")}

    async def scenario() -> None:
        generation, _ = pusher.stage(before)
        pusher.commit(before, generation)
        pusher.reloaded(generation)  # told to reload; nginx still holds nothing
        changed, _ = pusher.stage(after)
        await pusher.push({"primes": after["primes"]}, after, changed)
        await pusher.close()

    asyncio.run(scenario())
    held = lua_nginx.state()["upstreams"]
    assert set(held) == {"primes", "others"}  # a delta would have left "others" out
    assert ports(lua_nginx) == [lua_nginx.backends["b1"]]
    count = pusher.metrics.registry.get_sample_value
    assert count("upstreams_dynamic_pushes_total", {"kind": "full"}) == 1
    assert not count("upstreams_dynamic_pushes_total", {"kind": "changed"})


def test_a_refused_or_unreachable_push_raises_for_the_reload_path(lua_nginx: LuaNginx) -> None:
    gone = Pusher(
        DynamicConfig(enabled=True, endpoint=("127.0.0.1", 1), state_file=lua_nginx.state_file),
        SidecarMetrics(),
    )
    pusher = Pusher(lua_nginx.dynamic, SidecarMetrics())

    async def scenario() -> None:
        with pytest.raises(DynamicPushFailed, match=r"did not answer POST .*: could not connect \(conn") as e:
            await gone.push({}, {}, 1)
        assert "ssl" not in str(e.value) and str(e.value).count(".") <= 4  # one sentence, no aiohttp wording
        with pytest.raises(DynamicUpdateInvalid, match="not an IP literal"):
            await pusher.push({"primes": (Peer("evil.example", 80),)}, {}, 2)  # never sent
        await gone.close()
        await pusher.close()

    asyncio.run(scenario())
    assert lua_nginx.state()["generation"] == 0  # nothing reached nginx


def test_the_loop_repairs_drift(lua_nginx: LuaNginx, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pusher_module, "DRIFT_PERIOD", 0.05)
    metrics = SidecarMetrics()
    pusher = Pusher(lua_nginx.dynamic, metrics)
    pusher.commit({"primes": peers(lua_nginx, "b1", "b3")}, 1)

    def repairs() -> float | None:
        return metrics.registry.get_sample_value("upstreams_dynamic_repairs_total")

    async def scenario() -> None:
        task = asyncio.create_task(pusher.run())
        try:
            await asyncio.to_thread(
                wait_until,
                lambda: ports(lua_nginx) == [lua_nginx.backends[b] for b in ("b1", "b3")],
                what="the first sync",
            )
            # Someone else's push; the loop finds it on its own, with no reload and no signal.
            assert (await asyncio.to_thread(lua_nginx.push, {"primes": [lua_nginx.peer("b4")]}, True, 2**52))[
                0
            ] == 200
            await asyncio.to_thread(
                wait_until,
                lambda: ports(lua_nginx) == [lua_nginx.backends[b] for b in ("b1", "b3")],
                what="the drift repaired",
            )
            # Counted once its push is answered, a moment after nginx holds it.
            await asyncio.to_thread(wait_until, lambda: repairs() == 2, what="both repairs counted")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await pusher.close()

    asyncio.run(scenario())
    assert repairs() == 2


def test_a_state_nginx_has_no_room_for_empties_runtime_state(tmp_path: Path) -> None:
    nginx = LuaNginx(tmp_path / "nginx")
    nginx.server.snippet = nginx.server.snippet.replace(
        "lua_shared_dict upstreams 32m;", "lua_shared_dict upstreams 1m;"
    )
    nginx.write_upstream(["b1"])
    nginx.start()
    pusher = Pusher(nginx.dynamic, SidecarMetrics())
    huge = {f"u{i}": tuple(Peer("127.0.0.1", p) for p in range(1, 11)) for i in range(3000)}

    async def scenario() -> None:
        await pusher.push({"primes": peers(nginx, "b3")}, {}, pusher.stage({})[0])
        with pytest.raises(DynamicRefused, match="507"):
            await pusher.push(huge, huge, pusher.stage(huge)[0])
        await pusher.close()

    try:
        asyncio.run(scenario())
        # Left as it was, runtime state would keep b3, which the file no longer says: emptied, the file routes.
        assert nginx.state()["upstreams"] == {}
        assert set(nginx.count(4)) == {"b1"}
    finally:
        nginx.stop()


def test_a_large_state_is_read_back_whole(lua_nginx: LuaNginx) -> None:
    """A GET answer of megabytes arrives in pieces; the sync reads all of it (it once read the first piece
    only, took the state for invalid and replaced it with a full push)."""
    pusher = Pusher(lua_nginx.dynamic, SidecarMetrics())
    big = {f"u{i:05d}": tuple(Peer("127.0.0.1", 20000 + p) for p in range(1, 5)) for i in range(5000)}

    async def scenario() -> None:
        await pusher.push(big, big, pusher.stage(big)[0])
        held = await pusher._endpoint().fetch()
        assert dict(held.upstreams) == big  # 1.4 MB of JSON
        await pusher.close()

    asyncio.run(scenario())


def test_a_push_while_the_sync_reads_is_never_undone(
    lua_nginx: LuaNginx, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync reads nginx's state, a flip is pushed meanwhile: the sync must read again, not "repair"
    nginx back to what it read (seen at 5,000 upstreams: a removed instance served for the 30 s until
    the next drift check)."""
    metrics = SidecarMetrics()
    pusher = Pusher(lua_nginx.dynamic, metrics)
    before, after = {"primes": peers(lua_nginx, "b1", "b2")}, {"primes": peers(lua_nginx, "b2")}
    read = pusher_module.EndpointClient.fetch_text
    pushed_during_read: list[bool] = []

    async def fetch_then_push(client: pusher_module.EndpointClient) -> bytes:
        held = await read(client)
        if not pushed_during_read:  # the flip lands after nginx answered the read
            pushed_during_read.append(True)
            generation, _ = pusher.stage(after)
            await pusher.push(after, after, generation)
            pusher.commit(after, generation)
        return held

    async def scenario() -> None:
        await pusher.push(before, before, pusher.stage(before)[0])
        pusher.commit(before, pusher.generation)
        monkeypatch.setattr(pusher_module.EndpointClient, "fetch_text", fetch_then_push)
        assert await pusher.sync()  # read again soon: what it read is behind
        monkeypatch.setattr(pusher_module.EndpointClient, "fetch_text", read)
        assert not await pusher.sync()
        await pusher.close()

    asyncio.run(scenario())
    assert ports(lua_nginx) == [lua_nginx.backends["b2"]]
    assert metrics.registry.get_sample_value("upstreams_dynamic_repairs_total") == 0
