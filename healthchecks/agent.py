"""The local Consul agent, as the companion uses it: list, register, deregister, update a TTL check.

A thin edge over ``discovery.client.ConsulClient``: bodies are built by ``spec.registration_body`` and sent
as they are (py-consul's helpers add fields Consul 1.8 rejects and lack ``check/update``).
A registration Consul refuses (400) is a plain ``ConsulError`` naming the service; an unreachable agent is
``ConsulUnavailable``, which callers retry.
"""

from __future__ import annotations

import json
from typing import Any

import consul.callback
import consul.exceptions

from discovery.client import ConsulClient, consul_errors
from plumbing.errors import ConsulError, first_line

__all__ = ["Agent"]

MAX_OUTPUT = 4096  # Consul's default check_output_max_size


class Agent:
    """Calls to the local agent's ``/v1/agent`` endpoints."""

    def __init__(self, client: ConsulClient, output_limit: int = MAX_OUTPUT) -> None:
        self.client = client
        self.output_limit = output_limit  # [registrar] check_output_limit

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = self.client.prepare_headers()
        return headers

    async def services(self) -> dict[str, dict[str, Any]]:
        """Return the agent's services by ID (``GET /v1/agent/services``)."""
        async with consul_errors("the list of the agent's services"):
            found = await self.client.http.get(
                consul.callback.CB.json(), "/v1/agent/services", headers=self._headers()
            )
        return dict(found or {})

    async def checks(self) -> dict[str, dict[str, Any]]:
        """Return the agent's checks by ID (``GET /v1/agent/checks``)."""
        async with consul_errors("the list of the agent's checks"):
            found = await self.client.http.get(
                consul.callback.CB.json(), "/v1/agent/checks", headers=self._headers()
            )
        return dict(found or {})

    async def register(self, body: dict[str, Any]) -> None:
        """Register (or replace) one service with its checks."""
        what = f"the registration of service {body['ID']!r}"
        try:
            async with consul_errors(what):
                await self.client.http.put(
                    consul.callback.CB.boolean(),
                    "/v1/agent/service/register",
                    params=[("replace-existing-checks", "true")],
                    data=json.dumps(body),
                    headers=self._headers(),
                )
        except ConsulError as exc:
            cause = exc.__cause__
            if isinstance(cause, consul.exceptions.BadRequest | consul.exceptions.ClientError):
                raise ConsulError(f"Consul refused {what}: {first_line(cause)}.") from cause
            raise

    async def deregister(self, service_id: str) -> None:
        """Deregister one service of this agent (unknown IDs are not an error)."""
        async with consul_errors(f"the deregistration of service {service_id!r}"):
            await self.client.http.put(
                consul.callback.CB.boolean(),
                f"/v1/agent/service/deregister/{service_id}",
                headers=self._headers(),
            )

    async def update_check(self, check_id: str, status: str, output: str) -> None:
        """Set a TTL check's status and output (``PUT /v1/agent/check/update/ID``)."""
        body = {"Status": status, "Output": output[: self.output_limit]}
        async with consul_errors(f"the update of check {check_id!r}"):
            await self.client.http.put(
                consul.callback.CB.boolean(),
                f"/v1/agent/check/update/{check_id}",
                data=json.dumps(body),
                headers=self._headers(),
            )
