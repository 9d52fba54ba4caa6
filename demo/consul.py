"""The demo's Consul: the harness's dev agent on free loopback ports, unless the user names one."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path

from harness.consul import ConsulAgent, consul_binary, start_agent, wait_for_leader
from harness.process import Child, PartFailed

__all__ = ["start_consul", "wait_for_leader"]


async def start_consul(workdir: Path, env: Mapping[str, str], stack: AsyncExitStack) -> tuple[Child, str]:
    """Start ``consul agent -dev`` with every port free (stopped when ``stack`` closes); return it and
    its HTTP address once it has a leader."""
    if not consul_binary(env):
        raise PartFailed(
            "Consul is not installed (no consul on the PATH); install it or pass --consul-address."
        )
    agent = ConsulAgent(workdir, extra_hcl=f'data_dir = "{workdir / "consul-data"}"\n', env=env)
    child = await start_agent(agent, stack)
    return child, agent.address
