"""What the sidecar knows of its own state, for ``/health``, ``/status`` and the one-shot commands: pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from discovery.model import Snapshot
from plumbing.status import Health

__all__ = ["SidecarState"]


@dataclass
class SidecarState:
    """Updated by the daemon after each round and apply; read by the status endpoint and the CLI."""

    consul: str  # Consul's address, for the status document
    applied: int = 0  # successful applies that reloaded nginx
    last_error: str | None = None  # why the last change was not applied; cleared by a success
    failures: list[str] = field(default_factory=list)  # what the last complete round did not do
    ready: bool = False  # the first complete render is live (or checked and waiting for nginx)

    def fail(self, error: Exception, what: str) -> None:
        """Record a failure of this round: ``what`` happened because of ``error``."""
        self.last_error = str(error)
        self.failures.append(f"{what}: {error}")

    def health(
        self, *, token_problem: str | None, reachable: bool | None, consul_error: str | None
    ) -> Health:
        """Healthy when Consul answers, the token is usable and the last apply succeeded."""
        if token_problem is not None:
            return Health(False, token_problem)  # first: a refused token also makes every query fail
        if reachable is False:
            return Health(False, f"Consul is unreachable: {consul_error}")
        if self.last_error is not None:
            return Health(False, f"The last change was not applied: {self.last_error}")
        if not self.ready:
            return Health(False, "Waiting for the first complete render.")
        return Health(True, "", {"reloads": self.applied})

    def status(
        self,
        health: Health,
        snapshot: Snapshot,
        templates: Iterable[str],
        excluded: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """What the sidecar sees: every watched service with its instances and their health."""
        services = {
            str(query): [
                {"id": i.id, "address": i.address, "port": i.port, "node": i.node, "status": i.status}
                for i in instances
            ]
            for query, instances in snapshot.services
        }
        return {
            "healthy": health.ok,
            "reason": health.reason,
            "consul": self.consul,
            "reloads": self.applied,
            "services": services,
            "templates": list(templates),
            "excluded": excluded,
        }
