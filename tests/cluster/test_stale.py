"""``[consul] max_stale`` against a real cluster: followers answer while there is no leader."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import urllib.error
import urllib.parse
from typing import Any

import pytest

from discovery.bulk import BULK_MIN
from discovery.client import ConsulClient, consul_errors
from discovery.model import KeyQuery, ServiceQuery, Snapshot
from discovery.settings import ConsulSettings
from discovery.watch import Watcher
from plumbing.errors import ConsulUnavailable
from tests.support.cluster import Cluster, ClusterAgent
from tests.support.figures import record
from tests.support.waiting import wait_until


async def _ask(settings: ConsulSettings, tries: int = 25) -> list[Any] | str:
    """The instances of 'prime', or the last error's text after ``tries`` attempts.

    Retried because the client agent may first try a server that was just killed.
    """
    client = ConsulClient(settings)
    error = ""
    try:
        for _ in range(tries):
            try:
                async with consul_errors("the health of service 'prime'"):
                    _, entries = await client.health.service("prime")
                return list(entries)
            except ConsulUnavailable as exc:
                error = str(exc)
                await asyncio.sleep(0.1)
        return error
    finally:
        await client.close()


def _without_quorum(cluster: Cluster) -> None:
    leader = cluster.leader()
    follower = next(s for s in cluster.servers if s is not leader)
    leader.kill()
    follower.kill()
    survivor = next(s for s in cluster.servers if s.running)
    wait_until(lambda: cluster._leader_seen_by(survivor) == "", what="the survivor to know no leader")


@pytest.mark.slow
def test_with_max_stale_a_follower_answers_while_there_is_no_leader_and_without_it_nobody_does(
    cluster: Cluster,
) -> None:
    host = cluster.clients[0]
    host.register("prime", "p1", 9999)
    # Every server has applied it (a follower learns of a commit only at the leader's next message).
    wait_until(
        lambda: all(s.api("GET", "/v1/health/service/prime?stale") for s in cluster.servers),
        what="p1 on every server",
    )
    _without_quorum(cluster)  # one server of three: no leader until the others come back
    base = ConsulSettings(host=host.ip, port=host.http_port, timeout=1.0)
    stale = asyncio.run(_ask(dataclasses.replace(base, max_stale=60.0)))
    assert isinstance(stale, list) and [e["Service"]["ID"] for e in stale] == ["p1"]
    # The default mode waits for a leader (Consul holds the call up to 7 s, then "No cluster leader").
    consistent = asyncio.run(_ask(base, tries=1))
    assert isinstance(consistent, str), consistent
    time.sleep(0.6)  # the survivor's last contact with a leader is now older than 0.5 s
    too_old = asyncio.run(_ask(dataclasses.replace(base, max_stale=0.5), tries=1))
    assert isinstance(too_old, str), too_old
    record("cluster: no quorum, stale reads", faults=2, requests=3, failed=0)


class Recording(ConsulClient):
    """The real client, remembering every request its transport sends (after the stale rule)."""

    sent: list[str]

    def http_connect(self, host: str, port: int, scheme: str, verify: Any = True, cert: Any = None) -> Any:
        transport = super().http_connect(host, port, scheme, verify, cert)
        send = transport._send

        async def recording(method: str, uri: str, *args: Any) -> Any:
            parts = urllib.parse.urlsplit(uri)
            self.sent.append(f"{method} {parts.path}?{parts.query}")
            return await send(method, uri, *args)

        transport._send = recording
        return transport


async def _watch_without_a_leader(settings: ConsulSettings, deps: list[Any]) -> tuple[Snapshot, list[str]]:
    """The first snapshot holding every dependency, and every request sent to get it."""
    client = Recording(settings)
    client.sent = []
    watcher = Watcher(client, wait="2s", min_interval=0.01)
    watcher.want(deps)
    task = asyncio.create_task(watcher.run())
    try:
        version = 0
        async with asyncio.timeout(40):
            while True:
                version, snapshot = await watcher.updates.wait_newer(version)
                if all(snapshot.has(d) for d in deps) and watcher.reachable:
                    return snapshot, client.sent
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


def _replicated(server: ClusterAgent) -> bool:
    """Whether this server's own copy holds every service and the key (a follower learns late)."""
    try:
        keys = server.api("GET", "/v1/kv/stale/?keys&stale")
    except urllib.error.HTTPError:
        return False  # 404: not there yet
    return len(server.api("GET", "/v1/catalog/services?stale")) > BULK_MIN and keys == ["stale/probe"]


def _answers_stale(agent: ClusterAgent) -> bool:
    try:
        return bool(agent.api("GET", "/v1/catalog/nodes?stale"))
    except urllib.error.HTTPError:
        return False  # 500: it asked a server that is gone


@pytest.mark.slow
def test_with_max_stale_every_query_of_the_watch_is_answered_by_a_follower_while_there_is_no_leader(
    cluster: Cluster,
) -> None:
    # The watch's own queries, not only one read: both health signal queries, the catalog, the KV
    # query and the bulk read per node (enough services on one host for it: 5 nodes x 8 < BULK_MIN).
    host = cluster.clients[0]
    names = [f"svc{i}" for i in range(BULK_MIN)]
    for i, name in enumerate(names):
        host.register_ttl(name, f"{name}-1", 9000 + i, status="critical" if i == 0 else "passing")
    host.api("PUT", "/v1/kv/stale/probe", "here")
    wait_until(lambda: all(_replicated(s) for s in cluster.servers), what="all of it on every server")
    _without_quorum(cluster)
    # The client agent moves off a dead server only once a request to it failed: let it find the
    # survivor first, so a failed first read does not send the bulk read's services one by one.
    wait_until(lambda: _answers_stale(host), what="the client agent to reach the survivor")
    deps: list[Any] = [ServiceQuery(n) for n in names] + [KeyQuery("stale/probe")]
    settings = ConsulSettings(host=host.ip, port=host.http_port, timeout=1.0, max_stale=60.0)
    snapshot, sent = asyncio.run(_watch_without_a_leader(settings, deps))
    assert [i.status for i in snapshot.get(ServiceQuery("svc0"))] == ["critical"]
    assert [i.status for i in snapshot.get(ServiceQuery("svc1"))] == ["passing"]
    assert snapshot.get(KeyQuery("stale/probe")) == '"here"'  # the harness sends its bodies as JSON
    reads = {s.split("?")[0] for s in sent}
    for path in ("/v1/health/state/critical", "/v1/health/state/warning", "/v1/catalog/services"):
        assert f"GET {path}" in reads, sorted(reads)
    assert "GET /v1/catalog/nodes" in reads and any(r.startswith("GET /v1/catalog/node/") for r in reads)
    assert "GET /v1/kv/stale/probe" in reads
    # Each answer came from the survivor's own copy: not one read went to the leader (there is none).
    not_stale = [s for s in sent if "stale" not in s.split("?")[1].split("&")]
    assert not_stale == [], not_stale[:5]
    record("cluster: no quorum, stale watch", faults=2, requests=len(sent), failed=0)
