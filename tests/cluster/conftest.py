"""Fixtures of the cluster tests: one real Consul cluster (3 servers, 2 client agents) for the package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cluster import Cluster


@pytest.fixture(scope="package")
def consul_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Started once for every test in tests/cluster (about 2 s); stopped at the end."""
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), servers=3, clients=2)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def cluster(consul_cluster: Cluster) -> Iterator[Cluster]:
    """The package's cluster, every agent running and joined, with no services on the client agents."""
    consul_cluster.wait_healthy()
    consul_cluster.clear()
    yield consul_cluster
    consul_cluster.wait_healthy()  # bring back what a test killed or paused, for the next one
