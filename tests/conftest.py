"""Shared fixtures: one real Consul dev agent per test session, started on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.consul_agent import ConsulAgent


@pytest.fixture(scope="session")
def consul_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsulAgent]:
    """The session's Consul agent (left running between tests; use ``consul`` for a clean one)."""
    agent = ConsulAgent(tmp_path_factory.mktemp("consul"))
    agent.start()
    yield agent
    agent.stop()


@pytest.fixture
def consul(consul_agent: ConsulAgent) -> Iterator[ConsulAgent]:
    """The session's Consul agent with no services and no keys."""
    consul_agent.clear()
    yield consul_agent
    if consul_agent.proc is None:  # a test stopped it: bring it back for the next one
        consul_agent.start()


@pytest.fixture
def private_consul(tmp_path: Path) -> Iterator[ConsulAgent]:
    """A Consul agent of this test's own, for tests that stop, kill or reconfigure it."""
    agent = ConsulAgent(tmp_path)
    agent.start()
    yield agent
    agent.stop()
