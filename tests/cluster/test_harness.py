"""The cluster harness itself: distinct loopback addresses, a leader that moves, a dead node seen as such."""

from __future__ import annotations

from tests.support.cluster import Cluster
from tests.support.waiting import wait_until


def test_every_agent_has_its_own_loopback_address_and_all_are_members(cluster: Cluster) -> None:
    ips = [a.ip for a in cluster.agents]
    assert len(set(ips)) == 5 and all(ip.startswith("127.0.0.") and ip != "127.0.0.1" for ip in ips)
    members = cluster.clients[0].api("GET", "/v1/agent/members")
    assert {m["Name"] for m in members if m["Status"] == 1} == {a.name for a in cluster.agents}


def test_killing_the_leader_elects_another_and_a_killed_host_turns_serf_health_critical(
    cluster: Cluster,
) -> None:
    old = cluster.leader()
    old.kill()
    new = cluster.leader()
    assert new is not old
    host = cluster.clients[1]
    host.kill()
    wait_until(lambda: host.name not in cluster.serf_passing(new), what="the dead host's serfHealth critical")
    cluster.wait_healthy()
    assert host.name in cluster.serf_passing(new)
