"""The many-sidecars benchmark's measuring parts, on the real cluster, so they cannot rot (seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.sidecars import measure_on, phase, sidecar, summary
from tests.support.cluster import Cluster
from tests.support.waiting import wait_until


@pytest.mark.slow
def test_a_phase_reads_every_servers_counters_and_rpc_connections(tmp_path: Path, cluster: Cluster) -> None:
    host = cluster.clients[0]
    host.register_ttl("svc0", "svc0-0", 10000)
    proc = sidecar(tmp_path / "s", host, "10s")
    try:
        wait_until(lambda: (tmp_path / "s" / "up.conf").exists(), timeout=20, what="the sidecar's render")
        measured = phase(
            cluster, 1.0, lambda k: host.set_ttl("svc0-0", "critical" if k % 2 else "passing"), 5.0
        )
    finally:
        proc.stop()
    servers = measured["servers"]
    assert set(servers) == {s.name for s in cluster.servers}
    assert sum(s["leader"] for s in servers.values()) == 1
    assert all(s["connections"] > 0 for s in servers.values())  # the other servers', at least
    assert sum(s["queries_per_s"] for s in servers.values()) > 0  # the sidecar's blocking queries
    assert measured["flips"] >= 4
    lines = summary(1, {"baseline": measured, "default": {"idle": measured, "churn": measured},
                        "max_stale": {"idle": measured, "churn": measured}}, 1)  # fmt: skip
    assert len(lines) == 4 and all("queries/s" in line for line in lines)


@pytest.mark.slow
def test_the_measure_both_entry_points_share_fills_a_section_per_size_and_mode(
    tmp_path: Path, cluster: Cluster
) -> None:
    logged: list[str] = []
    section = measure_on(cluster, tmp_path, count=2, sizes=[2], seconds=1.5, log=logged.append)
    assert (section["sidecars"], section["watched_services"], list(section["sizes"])) == (2, 5, ["2"])
    size = section["sizes"]["2"]
    assert size["register_s"] > 0 and set(size["baseline"]["servers"]) == {s.name for s in cluster.servers}
    for mode in ("default", "max_stale"):
        assert size[mode]["churn"]["flips"] >= 1, mode
        # the flips hit watched services (svc0, svc1): the sidecars' blocking queries wake and start again
        assert sum(s["queries_per_s"] for s in size[mode]["churn"]["servers"].values()) > 0, mode
    assert len(logged) == 1 and logged[0].count("queries/s") == 4
