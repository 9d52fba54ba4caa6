"""The sidecar's health and status document: pure, from its state and what the daemon passes in."""

from __future__ import annotations

import pytest

from discovery.model import Instance, ServiceQuery, Snapshot
from plumbing.status import Health
from renderer.state import SidecarState

TOKEN = "ACLs are on and the Consul token can read no service at all."


def ready(**changes: object) -> SidecarState:
    state = SidecarState(consul="http://127.0.0.1:8500", applied=3, ready=True)
    for name, value in changes.items():
        setattr(state, name, value)
    return state


CASES = [
    ("healthy", ready(), None, True, Health(True, "", {"reloads": 3})),
    ("token first, even when Consul is away", ready(), TOKEN, False, Health(False, TOKEN)),
    ("Consul away", ready(), None, False, Health(False, "Consul is unreachable: gone.")),
    ("not yet asked", ready(), None, None, Health(True, "", {"reloads": 3})),
    (
        "last change not applied",
        ready(last_error="nginx rejected it."),
        None,
        True,
        Health(False, "The last change was not applied: nginx rejected it."),
    ),
    (
        "first render pending",
        ready(ready=False),
        None,
        True,
        Health(False, "Waiting for the first complete render."),
    ),
]


@pytest.mark.parametrize(("case", "state", "token", "reachable", "health"), CASES, ids=[c[0] for c in CASES])
def test_health(
    case: str, state: SidecarState, token: str | None, reachable: bool | None, health: Health
) -> None:
    assert state.health(token_problem=token, reachable=reachable, consul_error="gone.") == health, case


def test_a_failure_is_recorded_as_a_sentence_and_the_last_error() -> None:
    state = ready()
    state.fail(ValueError("the disk is full."), "Kept the last good files")
    assert state.failures == ["Kept the last good files: the disk is full."]
    assert state.last_error == "the disk is full."


def test_status_lists_every_watched_service_and_instance() -> None:
    web = ServiceQuery("web")
    up = Instance(node="n1", id="w1", name="web", address="127.0.0.1", port=80)
    snapshot = Snapshot.build({web: (up,), ServiceQuery("api"): ()}, {}, {})
    state = ready()
    status = state.status(
        state.health(token_problem=None, reachable=True, consul_error=None), snapshot, ["/t.j2"], []
    )
    assert status == {
        "healthy": True,
        "reason": "",
        "consul": "http://127.0.0.1:8500",
        "reloads": 3,
        "services": {
            "api": [],
            "web": [{"id": "w1", "address": "127.0.0.1", "port": 80, "node": "n1", "status": "passing"}],
        },
        "templates": ["/t.j2"],
        "excluded": [],
    }
