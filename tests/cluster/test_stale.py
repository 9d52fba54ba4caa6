"""``[consul] max_stale`` against a real cluster: followers answer while there is no leader."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from discovery.client import ConsulClient, consul_errors
from discovery.settings import ConsulSettings
from plumbing.errors import ConsulUnavailable
from tests.support.cluster import Cluster
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
