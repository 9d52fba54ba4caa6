"""Which engine events matter to the companion: the policy, kept apart from the edge that reads them."""

from __future__ import annotations

from .values import CONNECTED, ContainerEvent

__all__ = ["BIRTHS", "DEATHS", "RELEVANT_ACTIONS", "SIGNALS", "is_relevant", "kind"]

# Actions after which the set of running containers (or their health) may have changed.
RELEVANT_ACTIONS = frozenset(
    {"start", "restart", "die", "stop", "kill", "destroy", "remove", "pause", "unpause", "oom", "died"}
)
# After these a listing made at once may still show the container running (or not yet).
DEATHS = frozenset({"die", "died", "stop", "destroy", "remove", "pause"})
BIRTHS = frozenset({"start", "restart", "unpause"})
# Signals to a container: it may die of them, and then says so with an event of its own.
SIGNALS = frozenset({"kill", "oom"})


def kind(event: ContainerEvent) -> str:
    """The action without its details ("health_status: healthy" -> "health_status")."""
    return event.action.split(":", 1)[0].strip()


def is_relevant(event: ContainerEvent) -> bool:
    """True for events after which the registrations may have to change."""
    base = kind(event)
    return base in RELEVANT_ACTIONS or base in ("health_status", CONNECTED)
