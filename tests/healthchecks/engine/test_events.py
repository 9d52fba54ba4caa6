"""Which engine events matter to the companion."""

from __future__ import annotations

from healthchecks.engine import ContainerEvent, is_relevant


def test_relevant_events() -> None:
    assert is_relevant(ContainerEvent("start", "x"))
    assert is_relevant(ContainerEvent("health_status: unhealthy", "x"))
    assert is_relevant(ContainerEvent("connected", ""))
    assert not is_relevant(ContainerEvent("exec_start: sh -c true", "x"))
    assert not is_relevant(ContainerEvent("create", "x"))
