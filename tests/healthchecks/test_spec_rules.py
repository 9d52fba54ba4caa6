"""One set of rules for a spec's values: labels turn a problem into a warning, service files into an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthchecks.engine import ContainerInfo, PortBinding
from healthchecks.files import load_service_file
from healthchecks.labels import HostSettings, services_for
from healthchecks.spec import MAX_META, Problem, Timing, build_meta, build_timing, id_problem, weight_problem
from plumbing.errors import ConfigError

HOST = HostSettings(hostname="h1", advertise_address="127.0.0.1")


@pytest.mark.parametrize(
    ("weight", "ok"), [(1, True), (65535, True), (0, False), (65536, False), (True, False), ("3", False)]
)
def test_weights_are_whole_numbers_from_1_to_65535(weight: object, ok: bool) -> None:
    assert (weight_problem(weight) is None) == ok


@pytest.mark.parametrize(("sid", "ok"), [("h1:web:80", True), ("", False), ("a/b", False), ("a\nb", False)])
def test_service_ids_fit_in_a_url_path(sid: str, ok: bool) -> None:
    assert (id_problem(sid) is None) == ok


def test_meta_keeps_the_valid_pairs_and_names_each_one_left_out() -> None:
    pairs = [("version", "1"), ("consul-x", "y"), ("big", "v" * 513), ("n", 3)]
    meta, problems = build_meta(pairs)
    assert meta == (("version", "1"),)
    assert [p.field for p in problems] == ["meta", "meta", "meta"]
    many, problems = build_meta((f"k{i:03}", "v") for i in range(MAX_META))
    assert len(many) == MAX_META - 2 and len(problems) == 1 and "more than" in problems[0].says


@pytest.mark.parametrize(
    ("given", "timing", "fields"),
    [
        ({}, Timing(), []),
        ({"interval": 2.0}, Timing(interval=2.0, timeout=2.0), []),
        ({"interval": 0.0, "timeout": -1.0}, Timing(), ["interval", "timeout"]),
        ({"initial_status": "green"}, Timing(), ["initial_status"]),
        ({"deregister_after": 10.0}, Timing(deregister_after=60.0), ["deregister_after"]),
    ],
)
def test_check_timings_fall_back_with_one_problem_per_bad_value(
    given: dict[str, object], timing: Timing, fields: list[str]
) -> None:
    built, problems = build_timing(**given)  # type: ignore[arg-type]
    assert built == timing
    assert [p.field for p in problems] == fields
    assert all(isinstance(p, Problem) and p.says.startswith("must be") for p in problems)


def test_a_bad_weight_is_a_warning_on_a_label_and_an_error_in_a_file(tmp_path: Path) -> None:
    info = ContainerInfo(
        id="ab" * 32,
        name="web-1",
        image="web",
        labels=(("SERVICE_WEIGHT", "0"),),
        ports=(PortBinding(80, "tcp", "127.0.0.1", 8080),),
    )
    (spec,), (warning,) = services_for(info, HOST)
    assert spec.weight is None
    says = "must be a whole number from 1 to 65535"
    assert says in warning
    path = tmp_path / "svc.toml"
    path.write_text('name = "x"\nweight = 0\n')
    with pytest.raises(ConfigError, match=says):
        load_service_file(path, "h1", "127.0.0.1")
