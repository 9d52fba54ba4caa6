"""A flip's statuses derived from the status answers: equal to a read, or refused where a read is needed."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from discovery.catalog import parse_health
from discovery.derive import derive, lowered
from discovery.model import Instance
from discovery.problems import Problems, parse_problems

NODES = ("n1", "n2")


def entry(node: str, sid: str, checks: list[tuple[str, str, str]], weights: Any = None) -> dict[str, Any]:
    """A /v1/health/service entry; ``checks``: (check ID, service ID or '' for a node check, status)."""
    service = {"ID": sid, "Service": "web", "Address": "127.0.0.1", "Port": 8080, "Weights": weights}
    own = [{"CheckID": c, "ServiceID": s, "Status": st} for c, s, st in checks if s in ("", sid)]
    return {"Node": {"Node": node, "Address": "127.0.0.1"}, "Service": service, "Checks": own}


def answers(checks_by_node: dict[str, list[tuple[str, str, str]]], name: str = "web") -> Problems:
    """The union of both status answers for these checks: only the non-passing ones, as Consul sends."""
    raw = [
        {"Node": node, "CheckID": c, "ServiceID": s, "ServiceName": name if s else "", "Status": st}
        for node, checks in checks_by_node.items()
        for c, s, st in checks
        if st != "passing"
    ]
    return Problems.union(
        [parse_problems([c for c in raw if c["Status"] == state]) for state in ("critical", "warning")]
    )


def read(
    checks_by_node: dict[str, list[tuple[str, str, str]]], sids: dict[str, list[str]], weights: Any = None
) -> tuple[Instance, ...]:
    entries = [
        entry(node, sid, checks_by_node.get(node, []), weights) for node, ids in sids.items() for sid in ids
    ]
    return parse_health(entries)


def derived(
    before: tuple[Instance, ...], checks: dict[str, list[tuple[str, str, str]]], name: str = "web"
) -> tuple[Instance, ...] | None:
    after = answers(checks, name)
    return derive(before, "web", after, lowered(after))


SIDS = {"n1": ["w1", "w2"], "n2": ["w3"]}
PASSING = {"n1": [("c1", "w1", "passing"), ("c2", "w2", "passing")], "n2": [("c3", "w3", "passing")]}


def test_a_flip_to_critical_or_warning_is_derived_with_its_weight() -> None:
    weights = {"Passing": 10, "Warning": 2}
    before = read(PASSING, SIDS, weights)
    warning = {**PASSING, "n1": [("c1", "w1", "warning"), ("c2", "w2", "passing")]}
    assert derived(before, warning) == read(warning, SIDS, weights)
    assert [i.weight for i in derived(before, warning) or ()] == [2, 10, 10]
    critical = {**warning, "n2": [("c3", "w3", "critical")]}
    assert derived(read(warning, SIDS, weights), critical) == read(critical, SIDS, weights)


def test_a_recovery_is_not_derived_it_may_be_a_deregistration() -> None:
    down = {**PASSING, "n1": [("c1", "w1", "critical"), ("c2", "w2", "passing")]}
    assert derived(read(down, SIDS), PASSING) is None  # recovered, or deregistered while critical: read it
    node_down = {**PASSING, "n2": [("c3", "w3", "passing"), ("serfHealth", "", "critical")]}
    assert derived(read(node_down, SIDS), PASSING) is None  # the node came back, or left the catalog


def test_getting_better_with_a_check_of_its_own_left_is_derived() -> None:
    both = {**PASSING, "n1": [("c1", "w1", "critical"), ("c1b", "w1", "warning"), ("c2", "w2", "passing")]}
    one = {**PASSING, "n1": [("c1", "w1", "passing"), ("c1b", "w1", "warning"), ("c2", "w2", "passing")]}
    assert derived(read(both, SIDS), one) == read(one, SIDS)  # its warning check proves it still exists


def test_a_check_of_an_instance_not_read_is_not_derived() -> None:
    new = {**PASSING, "n2": [("c3", "w3", "passing"), ("c4", "w4", "critical")]}
    assert derived(read(PASSING, SIDS), new) is None  # w4 registered failing: only a read knows it


def test_a_node_check_takes_every_instance_on_its_node_down() -> None:
    node_down = {**PASSING, "n1": [*PASSING["n1"], ("serfHealth", "", "critical")]}
    assert derived(read(PASSING, SIDS), node_down) == read(node_down, SIDS)


def test_service_names_match_without_case() -> None:
    down = {**PASSING, "n1": [("c1", "w1", "critical"), ("c2", "w2", "passing")]}
    assert derived(read(PASSING, SIDS), down, name="WEB") == read(down, SIDS)


STATUS = st.sampled_from(["passing", "warning", "critical"])
CHECKS = st.fixed_dictionaries(
    {
        "n1": st.tuples(STATUS, STATUS, STATUS, STATUS),  # w1's two checks, w2's, the node's
        "n2": st.tuples(
            STATUS, STATUS, STATUS, STATUS
        ),  # w3's two checks, w4's (not always read), the node's
    }
)


def layout(s: dict[str, tuple[str, str, str, str]]) -> dict[str, list[tuple[str, str, str]]]:
    a, b, c, d = s["n1"]
    e, f, g, h = s["n2"]
    return {
        "n1": [("c1", "w1", a), ("c1b", "w1", b), ("c2", "w2", c), ("serfHealth", "", d)],
        "n2": [("c3", "w3", e), ("c3b", "w3", f), ("c4", "w4", g), ("serfHealth", "", h)],
    }


RANK = {"passing": 0, "warning": 1, "critical": 2}


@given(CHECKS, CHECKS, st.booleans())
def test_a_derivation_equals_a_read_or_is_refused(old: Any, new: Any, w4_read: bool) -> None:
    sids = {"n1": ["w1", "w2"], "n2": ["w3", "w4"] if w4_read else ["w3"]}
    before, truth = read(layout(old), sids), read(layout(new), {**sids, "n2": ["w3", "w4"]})
    got = derived(before, layout(new))
    if got is None:
        return
    assert got == tuple(i for i in truth if i.id in {j.id for j in before})
    for was, now in zip(before, got, strict=True):
        if RANK[now.status] < RANK[was.status]:  # better only with a failing check of its own left
            assert any(sid == now.id and status != "passing" for _, sid, status in layout(new)[now.node])


@given(CHECKS, CHECKS)
def test_a_deregistered_instance_is_never_derived_better(old: Any, new: Any) -> None:
    before = read(layout(old), SIDS)
    gone = {node: [c for c in checks if c[1] != "w1"] for node, checks in layout(new).items()}
    got = derived(before, gone)  # w1 left the catalog: its checks are in no answer any more
    if got is not None:
        assert RANK[got[0].status] >= RANK[before[0].status]


def test_every_case_is_reached() -> None:
    """The properties above see both outcomes (a derivation and a refusal) on these layouts."""
    statuses = ("passing", "warning", "critical")
    outcomes = {
        derived(read(layout({"n1": (a, "passing", "passing", "passing"), "n2": ("passing",) * 4}), SIDS),
                layout({"n1": (b, "passing", "passing", "passing"), "n2": ("passing",) * 4})) is None
        for a in statuses for b in statuses
    }  # fmt: skip
    assert outcomes == {True, False}
