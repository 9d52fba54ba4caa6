"""What the companion knows of its own state, for ``/health`` and ``/status``: pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plumbing.status import Health

from .spec import ServiceSpec

__all__ = ["RegistrarState"]


@dataclass
class RegistrarState:
    """Updated by the daemon after each reconcile and check result; read by the status endpoint."""

    consul: str  # Consul's address, for messages
    engine: str | None  # the engine's URL; None when containers are not watched
    consul_error: str | None = None  # why the last call to Consul failed; cleared by a reconcile
    engine_error: str | None = None  # why the engine could not be listed or followed
    reconciled: bool = False  # a reconcile has succeeded once
    owned: dict[str, ServiceSpec] = field(default_factory=dict)
    agent_checks: dict[str, str] = field(default_factory=dict)  # check ID -> status, from the agent
    results: dict[str, str] = field(default_factory=dict)  # check ID -> status, of checks run here

    def reconcile_done(self, owned: Iterable[ServiceSpec], agent_checks: Mapping[str, Any]) -> None:
        """Record what this host owns after a reconcile, and its checks' statuses on the agent."""
        self.owned = {spec.id: spec for spec in owned}
        self.observe_checks(agent_checks)
        wanted = self._check_ids()
        self.results = {cid: status for cid, status in self.results.items() if cid in wanted}

    def observe_checks(self, agent_checks: Mapping[str, Any]) -> None:
        """Keep the agent's view of our checks (``GET /v1/agent/checks``)."""
        wanted = self._check_ids()
        self.agent_checks = {
            cid: str(check.get("Status", "")) for cid, check in agent_checks.items() if cid in wanted
        }

    def _check_ids(self) -> set[str]:
        return {check.check_id for spec in self.owned.values() for check in spec.checks}

    def health(self) -> Health:
        """Healthy when Consul and the engine answer and the last reconcile succeeded."""
        # Both errors are already sentences naming Consul or the engine and what was asked.
        if self.consul_error is not None:
            return Health(False, self.consul_error)
        if self.engine_error is not None:
            return Health(False, self.engine_error)
        if not self.reconciled:
            return Health(False, "Waiting for the first reconcile.")
        return Health(True, "", {"services": len(self.owned)})

    def status(self) -> dict[str, Any]:
        """Every owned service with its checks and their current status."""
        health = self.health()
        return {
            "healthy": health.ok,
            "reason": health.reason,
            "consul": self.consul,
            "engine": self.engine,
            "services": {sid: self._service(spec) for sid, spec in sorted(self.owned.items())},
        }

    def _service(self, spec: ServiceSpec) -> dict[str, Any]:
        # A check run here is reported as its last result: fresher than the agent's view at reconcile.
        checks = {
            c.check_id: self.results.get(c.check_id) or self.agent_checks.get(c.check_id, "unknown")
            for c in spec.checks
        }
        return {
            "name": spec.name,
            "address": spec.address,
            "port": spec.port,
            "origin": spec.origin,
            "checks": checks,
        }
