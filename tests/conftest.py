"""Shared fixtures: one real Consul dev agent per test session, started on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.acl import ACL_HCL, MANAGEMENT
from tests.support.consul_agent import ConsulAgent
from tests.support.figures import FIGURES, NOTES


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


@pytest.fixture
def acl_consul(tmp_path: Path) -> Iterator[ConsulAgent]:
    """A Consul agent of this test's own with ACLs on, default deny; api() uses the management token."""
    agent = ConsulAgent(tmp_path / "acl-consul", extra_hcl=ACL_HCL, token=MANAGEMENT)
    agent.workdir.mkdir()
    agent.start()
    yield agent
    agent.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the fault-injection figures the tests recorded."""
    if not FIGURES:
        return
    terminalreporter.section("fault injection figures")
    for what, faults, requests, failed in FIGURES:
        terminalreporter.write_line(
            f"{what:<40} faults {faults:>4}   requests {requests:>6}   failed {failed:>4}"
        )
    total = [sum(f[i] for f in FIGURES) for i in (1, 2, 3)]
    terminalreporter.write_line(
        f"{'total':<40} faults {total[0]:>4}   requests {total[1]:>6}   failed {total[2]:>4}"
    )
    cluster = [f for f in FIGURES if f[0].startswith("cluster: ")]
    if cluster:
        terminalreporter.write_line(
            f"cluster faults survived: {sum(f[1] for f in cluster)} in {len(cluster)} tests "
            f"(leader, agents, hosts, datacenters), {sum(f[3] for f in cluster)} failed requests"
        )
    for line in NOTES:
        terminalreporter.write_line(line)
