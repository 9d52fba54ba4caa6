"""A pytest plugin for the Nix build sandbox: leave out every test that needs a running service.

The sandbox has no network and no daemons, so tests that use a fixture starting Consul, nginx or a container
engine are deselected (listed in the summary), whatever their file. nix/package.nix loads it with
``-p pytest_offline``.
"""

from __future__ import annotations

import pytest

__all__ = ["SERVICE_FIXTURES", "pytest_collection_modifyitems"]

SERVICE_FIXTURES = frozenset(
    {
        "consul_agent",
        "consul",
        "private_consul",
        "consul_cluster",
        "nginx",
        "podman",
        "docker",
        "engine",
        "container_engine",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests whose fixtures (direct or indirect) include a service fixture."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        names = getattr(item, "fixturenames", ())
        (drop if SERVICE_FIXTURES.intersection(names) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
