"""Consul JSON -> instances: address fallback, worst status, validation of untrusted values."""

from __future__ import annotations

from typing import Any

import pytest

from discovery.catalog import parse_health, parse_services, valid_address, worst_status


def entry(
    sid: str = "a1",
    address: str = "",
    port: Any = 80,
    node_address: str = "10.0.0.9",
    checks: Any = (),
    **service: Any,
) -> dict[str, Any]:
    return {
        "Node": {"Node": "n1", "Address": node_address, "Datacenter": "dc1"},
        "Service": {"ID": sid, "Service": "web", "Address": address, "Port": port, **service},
        "Checks": [{"Status": s, "ServiceID": sid} for s in checks],
    }


def test_empty_service_address_falls_back_to_the_node_address() -> None:
    (inst,) = parse_health([entry()])
    assert inst.address == "10.0.0.9"
    assert inst.node_address == "10.0.0.9"


def test_status_is_the_worst_of_all_checks() -> None:
    assert worst_status(["passing", "warning", "passing"]) == "warning"
    assert worst_status(["passing", "critical", "warning"]) == "critical"
    assert worst_status([]) == "passing"
    assert worst_status(["maintenance?"]) == "critical"
    (inst,) = parse_health([entry(checks=["passing", "critical"])])
    assert inst.status == "critical"


@pytest.mark.parametrize(
    ("address", "port"),
    [
        ("1.2.3.4; include /etc/passwd", 80),
        ("a b", 80),
        ("-bad.example", 80),
        ("ok.example", 0),
        ("ok.example", 65536),
        ("ok.example", "80"),
        ("ok.example", True),
        ("x" * 300, 80),
    ],
)
def test_invalid_addresses_and_ports_are_dropped_with_a_warning(
    address: str, port: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert parse_health([entry(address=address, port=port)]) == ()
    assert "Dropped instance 'a1' of service 'web'" in caplog.text


@pytest.mark.parametrize("address", ["10.1.2.3", "::1", "fe80::1", "db.internal", "a-1.example.com."])
def test_valid_addresses(address: str) -> None:
    assert valid_address(address)


def test_instances_are_sorted_by_node_then_id() -> None:
    got = parse_health([entry("b"), entry("a"), entry("c")])
    assert [i.id for i in got] == ["a", "b", "c"]


def test_weights_follow_status_and_are_clamped() -> None:
    (w,) = parse_health([entry(checks=["warning"], Weights={"Passing": 10, "Warning": 2})])
    assert w.weight == 2
    (p,) = parse_health([entry(Weights={"Passing": 10**9, "Warning": 1})])
    assert p.weight == 1000


def test_meta_and_tags_that_are_not_text_are_ignored() -> None:
    (inst,) = parse_health([entry(Tags=["a", 3, None], Meta={"k": "v", "n": 5})])
    assert inst.tags == ("a",)
    assert inst.meta == (("k", "v"),)


def test_services_are_sorted_with_unique_sorted_tags() -> None:
    got = parse_services({"b": ["y", "x", "x"], "a": None})
    assert [(s.name, s.tags) for s in got] == [("a", ()), ("b", ("x", "y"))]


def test_garbage_answers_parse_to_nothing() -> None:
    assert parse_health({"not": "a list"}) == ()
    assert parse_health([1, "x", None]) == ()
    assert parse_services(["x"]) == ()


def test_huge_values_are_left_out_and_lookalikes_kept_as_plain_text() -> None:
    huge = "x" * 65536
    (inst,) = parse_health([entry(Tags=[huge, "ok", "a\uff1bb", "c\u037ed"], Meta={"big": huge, "k": "v"})])
    assert inst.tags == ("ok", "a\uff1bb", "c\u037ed")
    assert inst.meta == (("k", "v"),)
    assert parse_health([entry(sid=huge)]) == ()
