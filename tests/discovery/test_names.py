"""Any service name Consul accepts is queried as exactly that name, against a real Consul."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import pytest

from discovery.client import ConsulClient, kv_prefix, service_path, unservable
from discovery.model import Dependency, KeyQuery, ServiceQuery, Snapshot
from discovery.settings import ConsulSettings
from discovery.watch import Watcher
from tests.support.consul_agent import ConsulAgent

# Names Consul accepts and reads by path; each must fetch its own instances and nothing else.
SERVABLE = ["a/b", "evil?index=1&wait=1s", "evil#frag", "e v i l", "x" * 300, "api.v2", "a%2Fb", "é/😀"]
# Names Consul accepts but cannot read by path: a 400, or a redirect that would read another service.
UNSERVABLE = ["..", ".", "a//b", "a/../b", "ev\u202eil", "no\u00a0break"]


def test_a_name_is_one_quoted_path_segment() -> None:
    assert service_path("a/b") == "/v1/health/service/a%2Fb"
    assert service_path("evil?index=1&wait=1s") == "/v1/health/service/evil%3Findex%3D1%26wait%3D1s"
    assert service_path("evil#frag") == "/v1/health/service/evil%23frag"
    assert service_path("a%2Fb") == "/v1/health/service/a%252Fb"


def test_names_consul_cannot_read_by_path_are_known_before_asking() -> None:
    assert [n for n in SERVABLE if unservable(n)] == []
    assert all(unservable(n) for n in UNSERVABLE)
    assert unservable("a/") is None  # a trailing slash survives Consul's path cleaning


def test_a_kv_prefix_is_shortened_to_what_consul_reads_as_it_is() -> None:
    assert kv_prefix("cfg/a//b") == "cfg/a/"
    assert kv_prefix("cfg/../x") == "cfg/"
    assert kv_prefix("cfg/\u202ex") == "cfg/"
    assert kv_prefix("cfg/a?b#c") == "cfg/a?b#c"


def settings(consul: ConsulAgent) -> ConsulSettings:
    return ConsulSettings(host="127.0.0.1", port=consul.http_port)


async def fetch_each(consul: ConsulAgent, names: list[str]) -> dict[str, list[str]]:
    client = ConsulClient(settings(consul))
    try:
        out = {}
        for name in names:
            _, entries = await client.health_service(name, dc=None, near=None)
            out[name] = sorted(e["Service"]["ID"] for e in entries)
        return out
    finally:
        await client.close()


def register_all(consul: ConsulAgent, names: list[str]) -> dict[str, str]:
    ids = {name: f"odd-{i}" for i, name in enumerate(names)}
    for name, sid in ids.items():
        consul.register(name, sid, 9000)
    consul.register("b", "plain-b", 9001)  # what a/../b would be redirected to
    consul.register("evil", "plain-evil", 9002)  # what a query string or fragment would cut off to
    return ids


def test_each_odd_name_fetches_its_own_instances_from_real_consul(consul: ConsulAgent) -> None:
    ids = register_all(consul, SERVABLE)
    got = asyncio.run(fetch_each(consul, SERVABLE))
    assert got == {name: [sid] for name, sid in ids.items()}


async def watch_until(
    consul: ConsulAgent, queries: list[Dependency], done: Callable[[Snapshot], bool], then: Callable[[], None]
) -> Snapshot:
    """Watch ``queries`` until every one has answered, call ``then``, and return the first snapshot ``done`` likes."""
    client = ConsulClient(settings(consul))
    watcher = Watcher(client, wait="1s", min_interval=0.01)
    watcher.want(queries)
    task = asyncio.create_task(watcher.run())
    try:
        version, called = 0, False
        async with asyncio.timeout(15):
            while True:
                version, snapshot = await watcher.updates.wait_newer(version)
                if not all(snapshot.has(q) for q in queries):
                    continue
                if not called:
                    called = True
                    await asyncio.to_thread(then)
                if done(snapshot):
                    return snapshot
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


def watch_once(consul: ConsulAgent, queries: list[Dependency]) -> Snapshot:
    return asyncio.run(watch_until(consul, queries, lambda _: True, lambda: None))


def test_the_watcher_reads_unservable_names_as_empty_and_every_other_name_exactly(
    consul: ConsulAgent, caplog: pytest.LogCaptureFixture
) -> None:
    ids = register_all(consul, SERVABLE + UNSERVABLE)
    queries = [ServiceQuery(n) for n in [*SERVABLE, *UNSERVABLE, "b"]]
    snapshot = watch_once(consul, list(queries))
    read: dict[str, Any] = {q.name: sorted(i.id for i in snapshot.get(q)) for q in queries}  # type: ignore[attr-defined]
    assert read == {**{n: [ids[n]] for n in SERVABLE}, **{n: [] for n in UNSERVABLE}, "b": ["plain-b"]}
    for name in UNSERVABLE:
        assert f"Service {name!r} reads as no instances" in caplog.text


def test_a_name_consul_refuses_with_400_reads_as_empty_without_retrying(
    consul: ConsulAgent, caplog: pytest.LogCaptureFixture
) -> None:
    # U+1FAE0 is printable for Python 3.11 (Unicode 14); Consul 1.8 (Go 1.15, Unicode 13) answers 400.
    name = "melt\U0001fae0"
    ids = register_all(consul, [name, "plain"])
    snapshot = watch_once(consul, [ServiceQuery(name), ServiceQuery("plain")])
    assert [i.id for i in snapshot.get(ServiceQuery("plain"))] == [ids["plain"]]  # type: ignore[attr-defined]
    got = [i.id for i in snapshot.get(ServiceQuery(name))]  # type: ignore[attr-defined]
    refused = f"Service {name!r} reads as no instances: Consul refused the query (400" in caplog.text
    # A Consul built with a newer Unicode reads it; an older one refuses it, once, and nothing stalls.
    assert (got, refused) in (([ids[name]], False), ([], True))
    assert "Lost Consul" not in caplog.text


def test_kv_keys_consul_cannot_read_by_path_are_read_exactly(consul: ConsulAgent) -> None:
    values = {"cfg/a//b": "1", "cfg/../x": "2", "cfg/\u202ex": "3", "cfg/q?b#c": "4", "cfg/a/b": "5"}
    # Consul's KV endpoint cannot write such keys by path either; its transaction endpoint can.
    ops = [
        {"KV": {"Verb": "set", "Key": k, "Value": base64.b64encode(v.encode()).decode()}}
        for k, v in values.items()
    ]
    consul.api("PUT", "/v1/txn", ops)
    # Each key alone, so the prefix read is the key itself, then all together.
    for key, value in values.items():
        assert watch_once(consul, [KeyQuery(key)]).get(KeyQuery(key)) == value, key
    snapshot = watch_once(consul, [KeyQuery(k) for k in values])
    assert {k: snapshot.get(KeyQuery(k)) for k in values} == values


def test_a_change_to_a_name_differing_in_case_refreshes_the_watched_name(consul: ConsulAgent) -> None:
    # Consul matches service names without case: /v1/health/service/api also lists 'API' instances.
    consul.register("api", "api-1", 9000)
    query = ServiceQuery("api")

    def ids(snapshot: Snapshot) -> set[str]:
        return {i.id for i in snapshot.get(query)}  # type: ignore[attr-defined]

    snapshot = asyncio.run(
        watch_until(
            consul,
            [query],
            lambda s: ids(s) == {"api-1", "upper-1"},
            lambda: consul.register("API", "upper-1", 9001),
        )
    )
    assert ids(snapshot) == {"api-1", "upper-1"}
