"""The health signal's two halves (critical, warning) read as one non-passing state."""

from __future__ import annotations

from discovery.problems import Problems, parse_problems


def check(node: str, cid: str, service: str, status: str, index: int = 1) -> dict[str, object]:
    return {"Node": node, "CheckID": cid, "ServiceID": f"{service}-1" if service else "", "ServiceName": service,
            "Status": status, "ModifyIndex": index}  # fmt: skip


def test_the_union_of_both_answers_groups_checks_as_one_answer() -> None:
    critical = parse_problems(
        [check("n1", "c1", "web", "critical"), check("n2", "serfHealth", "", "critical")]
    )
    warning = parse_problems([check("n1", "c2", "web", "warning"), check("n1", "c3", "api", "warning")])
    both = Problems.union([critical, warning])
    assert set(both.services) == {"web", "api"} and len(both.services["web"]) == 2
    assert set(both.nodes) == {"n2"}
    assert both == Problems.union([warning, critical])


def test_a_check_moving_from_warning_to_critical_changes_its_service_only() -> None:
    before = Problems.union([parse_problems([]), parse_problems([check("n1", "c1", "web", "warning")])])
    after = Problems.union([parse_problems([check("n1", "c1", "web", "critical", 2)]), parse_problems([])])
    assert after.changed(before) == ({"web"}, set())
    assert before.changed(before) == (set(), set())
