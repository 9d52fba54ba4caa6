"""nginx.upstreams' loop in Python: the text, warnings and dependencies of the Jinja loop it replaced,
with the blocks of services that did not change reused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from discovery.model import CatalogQuery, Instance, KeyQuery, ServiceQuery, ServiceSummary, Snapshot
from plumbing.errors import TemplateError
from renderer.template import Rendered, TemplateSet
from tests.renderer.test_incremental import JINJA_LOOP

WEB = (Instance("n1", "w1", "web", "127.0.0.1", 81), Instance("n2", "w2", "web", "127.0.0.2", 82))
DB = (Instance("n1", "d1", "db", "127.0.0.3", 91, status="warning"),)


def snap(web: tuple[Instance, ...] = WEB, db: tuple[Instance, ...] = DB, **keys: str | None) -> Snapshot:
    return Snapshot.build(
        {ServiceQuery("web"): web, ServiceQuery("db"): db},
        {CatalogQuery(): (ServiceSummary("db"), ServiceSummary("web", ("blue",)))},
        {KeyQuery(k): v for k, v in keys.items()},
    )


def render(folder: Path, text: str, *snapshots: Snapshot) -> tuple[TemplateSet, Path, list[Rendered]]:
    folder.mkdir(exist_ok=True)
    source = folder / "t.j2"
    source.write_text('{% import "nginx.j2" as nginx %}\n' + text)
    ts = TemplateSet([source])
    assert ts.load() == []
    return ts, source, [ts.render(source, s) for s in snapshots]


def as_jinja_loop(folder: Path, text: str, *snapshots: Snapshot) -> list[Rendered]:
    """What the library's Jinja loop (before it ran in Python) rendered for the same template."""
    return render(folder, JINJA_LOOP + text.replace("nginx.upstreams(", "jinja_upstreams("), *snapshots)[2]


def outcome(r: Rendered) -> tuple[object, ...]:
    return r.text, r.warnings, r.dependencies, r.missing


def counts(ts: TemplateSet, source: Path) -> tuple[int, int]:
    cache = ts.blocks.for_source(source)
    return cache.hits, cache.misses


def test_a_name_taken_by_a_hand_written_upstream_is_refused_with_the_jinja_loops_warning(
    tmp_path: Path,
) -> None:
    text = (
        '{{ nginx.upstream("U_WEB", service("db")) }}\n{{ nginx.upstreams(prefix="u_") }}\n'
        '{{ nginx.upstream("u_db", service("web")) }}\n{{ key("x") }}\n'
    )
    flipped = (dataclasses.replace(WEB[0], status="critical"), WEB[1])
    snaps = (snap(x="1"), snap(x="2"), snap(web=flipped, x="3"))
    ts, source, ours = render(tmp_path / "ours", text, *snaps)
    theirs = as_jinja_loop(tmp_path / "theirs", text, *snaps)
    assert [outcome(r) for r in ours] == [outcome(r) for r in theirs]
    assert ours[1].warnings == (
        "Skipped upstream 'u_web': nginx already has it as 'U_WEB'.",
        "Skipped upstream 'u_db': nginx already has it as 'u_db'.",
    )
    assert ours[2].text.count("upstream ") == 2 and "127.0.0.1:81" not in ours[2].text
    assert counts(ts, source) == (2, 2)  # db's blocks again; web's instances changed


def test_dependencies_are_those_of_the_jinja_loop_missing_ones_included(tmp_path: Path) -> None:
    text = '{{ nginx.upstreams(dc="far") }}{{ nginx.upstreams(tag="blue", passing=false) }}'
    partial = Snapshot.build({ServiceQuery("web"): WEB}, {CatalogQuery(): snap().catalogs[0][1]}, {})
    (ours,) = render(tmp_path / "ours", text, partial)[2]
    (theirs,) = as_jinja_loop(tmp_path / "theirs", text, partial)
    assert outcome(ours) == outcome(theirs)
    assert ours.dependencies == {CatalogQuery("far"), CatalogQuery(), ServiceQuery("web")}
    assert ours.missing == {CatalogQuery("far")}


def test_a_flip_runs_the_macro_for_the_changed_service_only(tmp_path: Path) -> None:
    text = '{{ nginx.upstreams(prefix="a_") }}{{ nginx.upstreams(prefix="b_", passing=false, backup_warning=true) }}'
    flipped = (dataclasses.replace(DB[0], status="passing"),)
    ts, source, (first, second) = render(tmp_path / "ours", text, snap(), snap(db=flipped))
    assert counts(ts, source) == (2, 2)
    assert "a_db {\n    # no healthy" in first.text and "a_db {\n    server 127.0.0.3:91;" in second.text
    assert second.text == render(tmp_path / "full", text, snap(db=flipped))[2][0].text


def test_the_same_call_twice_keeps_its_own_blocks_so_both_hit_after_a_change(tmp_path: Path) -> None:
    text = "{{ nginx.upstreams() }}{{ nginx.upstreams() }}{{ key('x') }}"
    snaps = (snap(x="1"), snap(x="2"))
    ts, source, ours = render(tmp_path / "ours", text, *snaps)
    assert counts(ts, source) == (4, 0)
    assert ours[1].warnings == (
        "Skipped upstream 'db': nginx already has it as 'db'.",
        "Skipped upstream 'web': nginx already has it as 'web'.",
    )
    assert [outcome(r) for r in ours] == [
        outcome(r) for r in as_jinja_loop(tmp_path / "theirs", text, *snaps)
    ]


def test_a_service_added_to_the_catalog_keeps_the_blocks_of_the_others(tmp_path: Path) -> None:
    ts, source, _ = render(tmp_path / "ours", "{{ nginx.upstreams() }}", snap())
    grown = Snapshot.build(
        {ServiceQuery("web"): WEB, ServiceQuery("db"): DB, ServiceQuery("api"): ()},
        {CatalogQuery(): (ServiceSummary("api"), ServiceSummary("db"), ServiceSummary("web"))},
        {},
    )
    text = ts.render(source, grown).text
    assert counts(ts, source) == (2, 1)
    assert text == render(tmp_path / "full", "{{ nginx.upstreams() }}", grown)[2][0].text
    assert text.startswith("upstream api {\n    # no healthy instance")


def test_a_config_folders_own_upstream_macro_is_called_for_every_service(tmp_path: Path) -> None:
    folder = tmp_path / "ours"
    folder.mkdir()
    (folder / "nginx.j2").write_text(
        "{% macro upstream(name, instances, backup_warning, balance, keepalive) %}"
        "u {{ name }} {{ instances | length }};{% endmacro %}"
        "{% macro upstreams(prefix) %}{{ upstream_blocks(upstream, prefix=prefix) }}{% endmacro %}"
    )
    ts, source, (first, _) = render(
        folder, "{{ nginx.upstreams('p_') }}{{ key('x') }}", snap(x="1"), snap(x="2")
    )
    assert first.text == "u p_db 0;\nu p_web 2;\n1"
    assert counts(ts, source) == (0, 0)


@pytest.mark.parametrize("call", ["upstream_blocks(key('x'))", "upstream_blocks(service)"])
def test_upstream_blocks_takes_only_a_macro(tmp_path: Path, call: str) -> None:
    source = tmp_path / "t.j2"
    source.write_text(f"{{{{ {call} }}}}\n")
    ts = TemplateSet([source])
    assert ts.load() == []
    with pytest.raises(
        TemplateError, match=r"t\.j2:1: refused by the sandbox: upstream_blocks\(\) takes a macro"
    ):
        ts.render(source, snap(x="1"))
