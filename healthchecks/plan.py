"""The pure planner: desired registrations vs. the agent's services -> what to register and deregister.

Rules:

1. A desired service is registered when the agent lacks it or holds another version (its digest differs).
2. A service is deregistered only when it carries this host's owner marker and nothing desires it.
3. A service of the same ID that this host does not own (no marker, or another host's) is never touched;
   the desired one is skipped with a warning instead.
4. Two desired services with one ID: the first (in a stable order) wins, the other is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .spec import DIGEST_KEY, OWNER_KEY, ServiceSpec, body_digest, registration_body

__all__ = ["Plan", "make_plan", "owned_ids"]


@dataclass(frozen=True)
class Plan:
    """What to do on the agent; an empty plan means the agent already matches."""

    register: tuple[tuple[ServiceSpec, dict[str, Any]], ...] = ()
    deregister: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # desired IDs left alone (another owner, or a duplicate)

    def __bool__(self) -> bool:
        return bool(self.register or self.deregister)


def owned_ids(agent_services: Mapping[str, Mapping[str, Any]], owner: str) -> tuple[str, ...]:
    """The IDs of the agent's services marked as owned by ``owner``, sorted."""
    return tuple(sorted(sid for sid, svc in agent_services.items() if _meta(svc).get(OWNER_KEY) == owner))


def _meta(service: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = service.get("Meta")
    return meta if isinstance(meta, Mapping) else {}


def make_plan(
    desired: Iterable[ServiceSpec], agent_services: Mapping[str, Mapping[str, Any]], owner: str
) -> Plan:
    """Compare what should be registered with what the agent holds (``GET /v1/agent/services``)."""
    wanted: dict[str, ServiceSpec] = {}
    warnings: list[str] = []
    skipped: list[str] = []
    for spec in desired:
        if spec.id in wanted:
            warnings.append(
                f"Service ID {spec.id!r} of {spec.origin} is already used by {wanted[spec.id].origin}; skipped."
            )
            continue
        wanted[spec.id] = spec
    register = []
    for sid, spec in sorted(wanted.items()):
        body = registration_body(spec, owner)
        current = agent_services.get(sid)
        if current is not None:
            meta = _meta(current)
            if meta.get(OWNER_KEY) != owner:
                warnings.append(
                    f"Service ID {sid!r} of {spec.origin} is already registered on the agent by someone else; "
                    "left alone."
                )
                skipped.append(sid)
                continue
            if meta.get(DIGEST_KEY) == body_digest(body):
                continue
        register.append((spec, body))
    deregister = tuple(sid for sid in owned_ids(agent_services, owner) if sid not in wanted)
    return Plan(
        register=tuple(register), deregister=deregister, warnings=tuple(warnings), skipped=tuple(skipped)
    )
