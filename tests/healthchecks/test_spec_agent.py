"""Registration bodies are accepted by a real Consul 1.8 agent, and the Agent edge works against it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from discovery.client import ConsulClient
from discovery.settings import ConsulSettings
from healthchecks.agent import Agent
from healthchecks.spec import CheckSpec, ServiceSpec, registration_body
from plumbing.errors import ConsulError, ConsulUnavailable
from tests.support.consul_agent import ConsulAgent

EVERY_KIND = ServiceSpec(
    id="h1:web:80",
    name="web",
    address="127.0.0.1",
    port=80,
    tags=("a", "b"),
    meta=(("version", "1"),),
    weight=3,
    checks=(
        CheckSpec(
            kind="http", check_id="h1:web:80:http", name="http", target="http://127.0.0.1:1/", interval=10
        ),
        CheckSpec(
            kind="tcp", check_id="h1:web:80:tcp", name="tcp", target="127.0.0.1:1", deregister_after=60
        ),
        CheckSpec(kind="ttl", check_id="h1:web:80:ttl", name="ttl", ttl=30, initial_status="warning"),
        CheckSpec(kind="script", check_id="h1:web:80:script", name="s", argv=("true",), container_id="c"),
        CheckSpec(
            kind="health", check_id="h1:web:80:health", name="h", container_id="c", initial_status="passing"
        ),
    ),
)


def with_agent(address: str, body: object) -> object:
    async def go() -> object:
        settings = ConsulSettings(host="127.0.0.1", port=int(address.rsplit(":", 1)[1]))
        client = ConsulClient(settings)
        try:
            return await body(Agent(client))  # type: ignore[operator]
        finally:
            await client.close()

    return asyncio.run(go())


def test_every_check_kind_is_accepted_by_the_agent(consul: ConsulAgent) -> None:
    async def go(agent: Agent) -> None:
        await agent.register(registration_body(EVERY_KIND, "h1"))
        await agent.update_check("h1:web:80:script", "passing", "ok " * 5000)

    with_agent(consul.address, go)
    service = consul.services()["h1:web:80"]
    assert service["Weights"] == {"Passing": 3, "Warning": 1}
    assert service["Meta"]["upstreams-registrar"] == "h1"
    checks = consul.api("GET", "/v1/agent/checks")
    assert len([c for c in checks.values() if c["ServiceID"] == "h1:web:80"]) == 5
    assert checks["h1:web:80:script"]["Status"] == "passing"
    assert len(checks["h1:web:80:script"]["Output"]) <= 4096
    assert checks["h1:web:80:ttl"]["Status"] == "warning"


def test_a_refused_registration_is_a_consul_error_naming_the_service(consul: ConsulAgent) -> None:
    bad = ServiceSpec(id="h1:bad", name="bad", address="x", port=1, meta=(("consul-reserved", "x"),))

    async def go(agent: Agent) -> None:
        await agent.register(registration_body(bad, "h1"))

    with pytest.raises(ConsulError, match="Consul refused the registration of service 'h1:bad'") as info:
        with_agent(consul.address, go)
    assert not isinstance(info.value, ConsulUnavailable)


def test_ids_with_odd_characters_are_escaped_in_paths(consul: ConsulAgent) -> None:
    odd = ServiceSpec(id="h1:a b?c#d", name="odd", address="x", port=1)

    async def go(agent: Agent) -> None:
        await agent.register(registration_body(odd, "h1"))
        assert "h1:a b?c#d" in await agent.services()
        await agent.deregister("h1:a b?c#d")

    with_agent(consul.address, go)
    assert "h1:a b?c#d" not in consul.services()


def test_an_unreachable_agent_is_consul_unavailable(tmp_path: Path) -> None:
    async def go(agent: Agent) -> None:
        await agent.services()

    with pytest.raises(ConsulUnavailable):
        with_agent("http://127.0.0.1:1", go)
