"""The round decision and the apply verdicts, as tables: pure functions, no I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.model import CatalogQuery, Instance, KeyQuery, ServiceQuery, ServiceSummary, Snapshot
from plumbing.errors import NginxCheckFailed, NginxError, NginxNotRunning, NginxReloadFailed, OutputError
from renderer.apply import Outcome
from renderer.outcome import KEPT, Verdict, judge
from renderer.round import (
    Action,
    RoundInput,
    changed_services,
    decide_round,
    needs,
    render_round,
    watched,
)
from renderer.template import Rendered, TemplateSet

WEB = ServiceQuery("web")
A = ((Path("/etc/nginx/a.conf"), "upstream a {}\n"),)
B = ((Path("/etc/nginx/a.conf"), "upstream b {}\n"),)
DENIED = "Consul does not accept the configured ACL token (denied); fix token_file or CONSUL_HTTP_TOKEN."


def given(**changes: object) -> RoundInput:
    """A complete round with a usable token and no refusal, changed as the case says."""
    fields: dict[str, object] = {
        "token_checked": True,
        "token_problem": None,
        "missing": frozenset(),
        "files": A,
        "refused": (),
        "dry": False,
    }
    fields.update(changes)
    return RoundInput(**fields)  # type: ignore[arg-type]


ROUNDS = [
    ("token not checked yet", given(token_checked=False), Action.WAIT_TOKEN),
    ("token refused", given(token_problem=DENIED), Action.WAIT_TOKEN),
    (
        "token refused beats missing data",
        given(token_problem=DENIED, missing=frozenset({WEB})),
        Action.WAIT_TOKEN,
    ),
    ("missing data", given(missing=frozenset({WEB})), Action.WAIT_DATA),
    ("missing data beats a dry run", given(missing=frozenset({WEB}), dry=True), Action.WAIT_DATA),
    ("missing data beats a refusal", given(missing=frozenset({WEB}), refused=A), Action.WAIT_DATA),
    ("complete", given(), Action.APPLY),
    ("complete, dry", given(dry=True), Action.PRINT),
    ("nginx refused these exact bytes", given(refused=A), Action.SKIP_REFUSED),
    ("nginx refused other bytes", given(refused=B), Action.APPLY),
    ("nothing rendered and nothing refused yet", given(files=()), Action.SKIP_REFUSED),
]


@pytest.mark.parametrize(("case", "round_input", "action"), ROUNDS, ids=[r[0] for r in ROUNDS])
def test_round_decision(case: str, round_input: RoundInput, action: Action) -> None:
    decision = decide_round(round_input)
    assert decision.action is action, case
    assert decision.complete is (action in (Action.PRINT, Action.SKIP_REFUSED, Action.APPLY))


def test_waiting_for_data_names_what_is_missing() -> None:
    missing = frozenset({WEB, KeyQuery("cfg/x")})
    assert decide_round(given(missing=missing)).missing == missing


def test_an_applied_decision_carries_the_files_to_remember_if_refused() -> None:
    assert decide_round(given(files=B, refused=A)).files == B


VERDICTS = [
    ("reloaded", Outcome.RELOADED, False, Verdict(succeeded=True, reloaded=True, ready=True)),
    ("unchanged", Outcome.UNCHANGED, False, Verdict(succeeded=True, ready=True)),
    (
        "check refused",
        NginxCheckFailed("x."),
        False,
        Verdict(refused=True, counters=("rollbacks", "check_failures")),
    ),
    (
        "check refused, one-shot",
        NginxCheckFailed("x."),
        True,
        Verdict(refused=True, counters=("rollbacks", "check_failures")),
    ),
    (
        "nginx not running",
        NginxNotRunning("x."),
        False,
        Verdict(ready=True, retry_reload=True, note="The checked files are in place for when it starts."),
    ),
    (
        "nginx not running, one-shot",
        NginxNotRunning("x."),
        True,
        Verdict(ready=True, note="The checked files are in place for when it starts."),
    ),
    (
        "reload failed",
        NginxReloadFailed("x."),
        False,
        Verdict(
            retry_reload=True,
            failure="New files are in place but nginx did not reload; retrying",
            counters=("reload_failures",),
        ),
    ),
    (
        "reload failed, one-shot",
        NginxReloadFailed("x."),
        True,
        Verdict(failure="New files are in place but nginx did not reload", counters=("reload_failures",)),
    ),
    ("write failed", OutputError("x."), False, Verdict(failure=KEPT, counters=("rollbacks",))),
    ("other nginx error", NginxError("x."), False, Verdict(failure=KEPT, counters=("rollbacks",))),
]


@pytest.mark.parametrize(("case", "result", "once", "verdict"), VERDICTS, ids=[v[0] for v in VERDICTS])
def test_apply_verdict(
    case: str, result: Outcome | NginxError | OutputError, once: bool, verdict: Verdict
) -> None:
    assert judge(result, once=once) == verdict, case


def test_needs_keep_what_a_failed_template_read_before() -> None:
    a, b = Path("/t/a.j2"), Path("/t/b.j2")
    before = {a: frozenset({WEB}), b: frozenset({KeyQuery("k")})}
    now = needs(before, [Rendered(a, "", frozenset({ServiceQuery("api")}), frozenset())])
    assert now == {a: frozenset({ServiceQuery("api")}), b: frozenset({KeyQuery("k")})}
    assert watched(now) == {ServiceQuery("api"), KeyQuery("k")}


def test_a_render_against_the_catalog_names_the_services_it_will_read(tmp_path: Path) -> None:
    source = tmp_path / "all.j2"
    source.write_text(
        "{% for s in services() %}{% for i in service(s.name) %}{{ i.port }}{% endfor %}{% endfor %}\n"
    )
    templates = TemplateSet([source])
    assert templates.load() == []
    empty = render_round(templates, Snapshot())
    assert watched(needs({}, empty.renders)) == empty.missing  # only the catalog, not answered yet
    (catalog,) = empty.missing
    assert isinstance(catalog, CatalogQuery)
    summary = Snapshot.build({}, {catalog: (ServiceSummary("web"),)}, {})
    with_catalog = render_round(templates, summary)
    assert with_catalog.missing == {WEB}  # the service is known now, its data is not: wait for it
    assert WEB in watched(needs({}, with_catalog.renders))


def test_changed_services_are_counted_for_the_log() -> None:
    up = Instance(node="n", id="w1", name="web", address="127.0.0.1", port=80)
    down = Instance(node="n", id="w2", name="web", address="127.0.0.1", port=81, status="critical")
    old = Snapshot.build({WEB: (up,)}, {}, {})
    new = Snapshot.build({WEB: (up, down)}, {}, {})
    assert changed_services(old, new) == [(WEB, 2, 1)]
    assert changed_services(new, new) == []
