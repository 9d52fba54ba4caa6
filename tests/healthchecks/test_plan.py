"""The pure planner: each rule of its docstring has a test."""

from __future__ import annotations

from healthchecks.plan import make_plan, owned_ids
from healthchecks.spec import DIGEST_KEY, OWNER_KEY, ServiceSpec, registration_body


def spec(sid: str, port: int = 80, origin: str = "container x") -> ServiceSpec:
    return ServiceSpec(id=sid, name="web", address="127.0.0.1", port=port, origin=origin)


def agent_view(*specs: ServiceSpec, owner: str = "h1") -> dict[str, dict[str, object]]:
    """What GET /v1/agent/services would answer after registering these specs."""
    out: dict[str, dict[str, object]] = {}
    for s in specs:
        body = registration_body(s, owner)
        out[s.id] = {"ID": s.id, "Service": s.name, "Port": s.port, "Meta": body["Meta"]}
    return out


def test_missing_services_are_registered() -> None:
    plan = make_plan([spec("a")], {}, "h1")
    assert [s.id for s, _ in plan.register] == ["a"] and plan.deregister == ()


def test_unchanged_services_give_an_empty_plan() -> None:
    assert not make_plan([spec("a")], agent_view(spec("a")), "h1")


def test_changed_services_are_registered_again() -> None:
    plan = make_plan([spec("a", port=81)], agent_view(spec("a")), "h1")
    assert [s.port for s, _ in plan.register] == [81]


def test_owned_services_nobody_wants_are_deregistered() -> None:
    plan = make_plan([], agent_view(spec("a"), spec("b")), "h1")
    assert plan.deregister == ("a", "b")


def test_services_without_our_marker_are_never_deregistered() -> None:
    agent = {"foreign": {"ID": "foreign", "Meta": {}}, "nometa": {"ID": "nometa"}}
    agent |= agent_view(spec("other"), owner="h2")
    assert make_plan([], agent, "h1").deregister == ()


def test_an_id_held_by_someone_else_is_left_alone_with_a_warning() -> None:
    plan = make_plan([spec("a")], agent_view(spec("a", port=9), owner="h2"), "h1")
    assert plan.register == () and plan.deregister == ()
    assert plan.skipped == ("a",)
    assert "someone else" in plan.warnings[0]


def test_duplicate_desired_ids_keep_the_first() -> None:
    plan = make_plan([spec("a", origin="container one"), spec("a", 81, "container two")], {}, "h1")
    assert [s.origin for s, _ in plan.register] == ["container one"]
    assert "container two" in plan.warnings[0]


def test_bodies_carry_owner_and_digest() -> None:
    body = registration_body(spec("a"), "h1")
    assert body["Meta"][OWNER_KEY] == "h1"
    assert len(body["Meta"][DIGEST_KEY]) == 16
    assert registration_body(spec("a"), "h1") == body
    assert registration_body(spec("a", 81), "h1")["Meta"][DIGEST_KEY] != body["Meta"][DIGEST_KEY]
    assert owned_ids(agent_view(spec("b"), spec("a")), "h1") == ("a", "b")
