"""What the signal queries see and what they fetch again, against a real Consul."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from discovery.bulk import BULK_MIN, read_bulk
from discovery.catalog import parse_health
from discovery.client import ConsulClient
from discovery.datacenter import Datacenter
from discovery.model import Instance, ServiceQuery, Snapshot
from discovery.settings import ConsulSettings
from discovery.watch import Watcher
from tests.support.consul_agent import ConsulAgent
from tests.support.ports import free_port


class Recording(ConsulClient):
    """The real client, remembering which services it fetched one by one."""

    fetched: list[str]
    blocked: list[str]  # blocking queries on one service (discovery.recoveries), answered or not

    async def health_service(
        self, name: str, *, dc: str | None, near: str | None, **block: Any
    ) -> tuple[Any, Any]:
        (self.blocked if block.get("index") else self.fetched).append(name)
        return await super().health_service(name, dc=dc, near=near, **block)


@contextlib.asynccontextmanager
async def watching(
    consul: ConsulAgent, queries: list[ServiceQuery]
) -> AsyncIterator[tuple[Watcher, Recording]]:
    client = Recording(ConsulSettings(host="127.0.0.1", port=consul.http_port))
    client.fetched, client.blocked = [], []
    watcher = Watcher(client, wait="5s", min_interval=0.01)
    watcher.want(queries)
    task = asyncio.create_task(watcher.run())
    try:
        yield watcher, client
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


async def until(watcher: Watcher, done: Callable[[Snapshot], bool]) -> Snapshot:
    """The first snapshot ``done`` likes (every wanted dependency answered)."""
    version = 0
    async with asyncio.timeout(20):
        while True:
            version, snapshot = await watcher.updates.wait_newer(version)
            if all(snapshot.has(d) for d in watcher.wanted) and done(snapshot):
                return snapshot


def instances(snapshot: Snapshot, name: str) -> tuple[Instance, ...]:
    return snapshot.get(ServiceQuery(name))  # type: ignore[return-value]


def statuses(snapshot: Snapshot, name: str) -> dict[str, str]:
    return {i.id: i.status for i in instances(snapshot, name)}


async def act(change: Callable[[], Any]) -> None:
    await asyncio.to_thread(change)


async def anchored(watcher: Watcher, client: Recording) -> None:
    """Until both signal queries have answered and what was read before them is read again (and done)."""
    async with asyncio.timeout(20):
        while True:
            dc = watcher._dcs[""]
            if dc.health_index and dc.catalog_index and not dc.unanchored and not dc.dirty:
                count = len(client.fetched)
                await asyncio.sleep(0.2)  # a re-read already taken from the dirty set may still be running
                if len(client.fetched) == count:
                    return
            await asyncio.sleep(0.01)


async def watch_waiting(watcher: Watcher, name: str) -> None:
    """Until the recovery watch of ``name`` has its request out (else a recovery is read, rightly)."""
    async with asyncio.timeout(10):
        while True:
            if ServiceQuery(name) in watcher._dcs[""].recoveries.waiting:
                return
            await asyncio.sleep(0.005)


def test_a_flip_is_derived_and_its_recovery_comes_by_the_watch_it_started(consul: ConsulAgent) -> None:
    for name in ("a", "b", "c"):
        consul.register_ttl(name, f"{name}-1", 9000)

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        async with watching(consul, [ServiceQuery(n) for n in ("a", "b", "c")]) as (watcher, client):
            await until(watcher, lambda s: statuses(s, "a") == {"a-1": "passing"})
            await anchored(watcher, client)  # the start-up's own re-reads are not the flip's
            client.fetched.clear()
            await act(lambda: consul.set_ttl("a-1", "critical"))
            await until(watcher, lambda s: statuses(s, "a") == {"a-1": "critical"})
            await act(lambda: consul.set_ttl("a-1", "warning"))
            await until(watcher, lambda s: statuses(s, "a") == {"a-1": "warning"})
            flips = list(client.fetched)
            await watch_waiting(watcher, "a")
            await act(lambda: consul.set_ttl("a-1", "passing"))
            await until(watcher, lambda s: statuses(s, "a") == {"a-1": "passing"})
            return flips, client.fetched[len(flips) :], client.blocked

    flips, recovery, blocked = asyncio.run(scenario())
    assert flips == []  # to critical, then to warning: derived from the status answers, nothing read
    # A recovery looks like a deregistration in the answers: the blocking query held on the service
    # since its failure answers it, so it is not read either.
    assert recovery == [] and set(blocked) == {"a"}


def test_passing_registrations_deregistrations_and_moves_are_seen(consul: ConsulAgent) -> None:
    consul.register_ttl("api", "api-1", 9000)

    def ids(s: Snapshot) -> dict[str, tuple[str, str]]:
        return {i.id: (i.address, i.status) for i in instances(s, "api")}

    async def scenario() -> None:
        async with watching(consul, [ServiceQuery("api")]) as (watcher, _):
            await until(watcher, lambda s: ids(s) == {"api-1": ("127.0.0.1", "passing")})
            await act(
                lambda: consul.register_ttl("api", "api-2", 9001)
            )  # passing: not in the filtered answer
            await until(watcher, lambda s: set(ids(s)) == {"api-1", "api-2"})
            await act(lambda: consul.deregister("api-1"))
            await until(watcher, lambda s: set(ids(s)) == {"api-2"})
            await act(
                lambda: consul.register_ttl("api", "api-2", 9001, address="127.0.0.2")
            )  # checks unchanged
            await until(watcher, lambda s: ids(s) == {"api-2": ("127.0.0.2", "passing")})
            await act(lambda: consul.register_ttl("api", "api-3", 9002, status="critical"))
            await until(watcher, lambda s: ids(s).get("api-3") == ("127.0.0.1", "critical"))

    asyncio.run(scenario())


@contextlib.contextmanager
def external_nodes(consul: ConsulAgent, *nodes: str) -> Iterator[None]:
    """Catalog nodes outside the agent (the fixture's clean-up only removes the agent's services)."""
    try:
        yield
    finally:
        for node in nodes:
            consul.api("PUT", "/v1/catalog/deregister", {"Node": node})


def register_on(
    consul: ConsulAgent, node: str, name: str, sid: str, status: str = "passing", port: int = 9000
) -> None:
    consul.api(
        "PUT",
        "/v1/catalog/register",
        {
            "Node": node,
            "Address": "127.0.0.3",
            "Service": {"ID": sid, "Service": name, "Port": port},
            "Check": {"CheckID": f"c-{sid}", "Name": "c", "Status": status, "ServiceID": sid},
        },
    )


def test_a_node_check_refetches_the_services_on_that_node_only(consul: ConsulAgent) -> None:
    consul.register_ttl("local", "local-1", 9000)
    with external_nodes(consul, "ext-1"):
        register_on(consul, "ext-1", "remote", "remote-1")

        async def scenario() -> list[str]:
            async with watching(consul, [ServiceQuery("local"), ServiceQuery("remote")]) as (watcher, client):
                await until(watcher, lambda s: statuses(s, "remote") == {"remote-1": "passing"})
                await anchored(watcher, client)  # the start-up's own re-reads are not the node check's
                client.fetched.clear()
                try:
                    # Maintenance mode is a critical node check on the agent's node (no service).
                    await act(lambda: consul.api("PUT", "/v1/agent/maintenance?enable=true&reason=test"))
                    await until(watcher, lambda s: statuses(s, "local") == {"local-1": "critical"})
                finally:
                    await act(lambda: consul.api("PUT", "/v1/agent/maintenance?enable=false"))
                await until(watcher, lambda s: statuses(s, "local") == {"local-1": "passing"})
                return client.fetched + client.blocked

        asked = asyncio.run(scenario())
    # Down: derived, nothing read. Back: read, or answered by the watch held since it went down; never
    # a service on another node.
    assert set(asked) == {"local"}


def many(consul: ConsulAgent) -> list[ServiceQuery]:
    """BULK_MIN + 6 services on two external nodes and the agent's, some critical, a node check warning."""
    names = [f"svc{i:03d}" for i in range(BULK_MIN + 5)] + ["Mixed"]
    for i, name in enumerate(names):
        register_on(consul, "ext-1", name, f"{name}-1", "critical" if i % 7 == 0 else "passing")
        if i % 2:
            register_on(consul, "ext-2", name, f"{name}-2", port=9001)
        if i % 5 == 0:
            consul.register_ttl(name, f"{name}-local", 9002, status="warning" if i % 3 else "passing")
    check = {"CheckID": "ext-2-node", "Name": "node", "Status": "warning"}
    consul.api("PUT", "/v1/catalog/register", {"Node": "ext-2", "Address": "127.0.0.3", "Check": check})
    return [ServiceQuery(n) for n in names[:-1]] + [ServiceQuery("mixed")]  # Consul reads names without case


def test_a_bulk_read_reads_what_one_by_one_reads(consul: ConsulAgent) -> None:
    with external_nodes(consul, "ext-1", "ext-2"):
        queries = many(consul)

        async def both() -> tuple[dict[str, tuple[Instance, ...]], dict[str, tuple[Instance, ...]]]:
            client = ConsulClient(ConsulSettings(host="127.0.0.1", port=consul.http_port))
            try:
                answer = await read_bulk(Watcher(client), "", queries, asyncio.Semaphore(4))
                assert answer is not None
                found, index = answer
                assert index > 0  # the reads' highest index: what a flip's answers must reach to be derived
                bulk = {q.name: tuple(sorted(found[q.name.lower()])) for q in queries}
                single = {
                    q.name: parse_health((await client.health_service(q.name, dc=None, near=None))[1])
                    for q in queries
                }
                return bulk, single
            finally:
                await client.close()

        bulk, single = asyncio.run(both())
    assert bulk == single
    seen = {i.status for found in single.values() for i in found}
    assert seen == {"passing", "warning", "critical"}
    assert [i.id for i in single["mixed"]] == ["Mixed-1", "Mixed-2"]


def test_many_services_are_read_in_bulk_and_kept_current(consul: ConsulAgent) -> None:
    with external_nodes(consul, "ext-1", "ext-2"):
        queries = many(consul)
        probe = queries[1].name

        async def scenario() -> tuple[int, int]:
            async with watching(consul, queries) as (watcher, client):
                await until(watcher, lambda s: len(s.services) == len(queries))
                first = len(client.fetched)
                # A passing instance registered: the filtered health explains nothing, all are read again.
                await act(lambda: register_on(consul, "ext-1", probe, "extra"))
                await until(watcher, lambda s: "extra" in statuses(s, probe))
                again = len(client.fetched) - first
                await act(lambda: register_on(consul, "ext-1", probe, "extra", "critical"))
                await until(watcher, lambda s: statuses(s, probe).get("extra") == "critical")
                return first, again

        first, again = asyncio.run(scenario())
    # One by one only for what the first health answer named (the critical ones): the rest in bulk.
    assert first < len(queries) // 2
    assert again < BULK_MIN


def test_a_bulk_read_declines_where_one_by_one_is_cheaper_or_consul_fails(consul: ConsulAgent) -> None:
    consul.register_ttl("api", "api-1", 9000)
    queries = [ServiceQuery(f"svc{i}") for i in range(BULK_MIN)]

    async def attempt(port: int, wanted: list[ServiceQuery]) -> Any:
        client = ConsulClient(ConsulSettings(host="127.0.0.1", port=port, timeout=2))
        try:
            return await read_bulk(Watcher(client), "", wanted, asyncio.Semaphore(4))
        finally:
            await client.close()

    assert asyncio.run(attempt(consul.http_port, queries)) is not None
    assert asyncio.run(attempt(consul.http_port, queries[:5])) is None  # 1 node for 5 services: one by one
    assert asyncio.run(attempt(free_port(), queries)) is None  # nobody listens: one by one, with retries


def test_what_was_read_before_both_signals_answered_is_read_again_once_they_have() -> None:
    async def scenario() -> list[set[ServiceQuery]]:
        client = ConsulClient(ConsulSettings(host="127.0.0.1", port=free_port()))
        try:
            dc = Datacenter(Watcher(client), "")
            dc.unanchored = {ServiceQuery("api")}
            dc.health_index = 5  # the health query has answered, the catalog query not yet
            dc._anchor()
            before = set(dc.dirty)
            dc.catalog_index = 7
            dc._anchor()
            return [before, set(dc.dirty), dc.unanchored]
        finally:
            await client.close()

    assert asyncio.run(scenario()) == [set(), {ServiceQuery("api")}, set()]
