"""The render caches: a template whose data did not change is not rendered again, and a call of the
library's upstream macro equal to one of the last render reuses its text, claims included."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from discovery.model import CatalogQuery, Instance, KeyQuery, ServiceQuery, ServiceSummary, Snapshot
from renderer import block_cache
from renderer.exclusion import without
from renderer.template import TemplateSet

WEB = (
    Instance("n1", "w1", "web", "127.0.0.1", 81),
    Instance("n2", "w2", "web", "127.0.0.2", 82, status="warning"),
)
API = (Instance("n1", "a1", "api", "127.0.0.1", 91),)


def snap(web: tuple[Instance, ...] = WEB, api: tuple[Instance, ...] = API, **keys: str | None) -> Snapshot:
    return Snapshot.build(
        {ServiceQuery("web"): web, ServiceQuery("api"): api},
        {CatalogQuery(): (ServiceSummary("api"), ServiceSummary("web"))},
        {KeyQuery(k): v for k, v in keys.items()},
    )


def template(tmp_path: Path, text: str) -> tuple[TemplateSet, Path]:
    source = tmp_path / "t.j2"
    source.write_text('{% import "nginx.j2" as nginx %}\n' + text)
    ts = TemplateSet([source])
    assert ts.load() == []
    return ts, source


def full(tmp_path: Path, text: str, snapshot: Snapshot) -> tuple[str, tuple[str, ...]]:
    """What a TemplateSet that never rendered before writes."""
    folder = tmp_path / f"full{len(list(tmp_path.glob('full*')))}"
    folder.mkdir()
    ts, source = template(folder, text)
    r = ts.render(source, snapshot)
    return r.text, r.warnings


def counts(ts: TemplateSet, source: Path) -> tuple[int, int]:
    cache = ts.blocks.for_source(source)
    return cache.hits, cache.misses


def test_the_same_call_again_is_a_hit_with_the_same_text(tmp_path: Path) -> None:
    text = (
        '{{ nginx.upstream("web", service("web")) }}{{ nginx.upstream("api", service("api")) }}{{ key("x") }}'
    )
    ts, source = template(tmp_path, text)
    first = ts.render(source, snap(x="1"))
    assert counts(ts, source) == (0, 2)
    again = ts.render(source, snap(x="2"))  # the template reads x, so it renders; its blocks did not change
    assert counts(ts, source) == (2, 0)
    assert again.text == first.text[:-1] + "2"
    assert (again.text, again.warnings) == full(tmp_path, text, snap(x="2"))


@pytest.mark.parametrize(
    "option",
    [
        'backup_warning=key("v") == "1"',
        'balance=key("v")',
        'keepalive=key("v") | int',
        'keepalive=(key("v") | int) if key("v") == "1" else 1.0',  # 1 and 1.0 are written differently
        'max_fails=key("v") | int',
        'fail_timeout=key("v")',
    ],
)
def test_a_changed_option_misses_and_renders_the_new_text(tmp_path: Path, option: str) -> None:
    text = f'{{{{ nginx.upstream("web", service("web", passing=false), {option}) }}}}'
    ts, source = template(tmp_path, text)
    before = ts.render(source, snap(v="1")).text
    after = ts.render(source, snap(v="2"))
    assert counts(ts, source) == (0, 1)
    assert after.text != before
    assert (after.text, after.warnings) == full(tmp_path, text, snap(v="2"))


def test_changed_instances_or_name_miss(tmp_path: Path) -> None:
    text = '{{ nginx.upstream(key("name"), service("web")) }}'
    ts, source = template(tmp_path, text)
    ts.render(source, snap(name="web"))
    flipped = (dataclasses.replace(WEB[0], status="critical"), WEB[1])
    r = ts.render(source, snap(web=flipped, name="web"))
    assert counts(ts, source) == (0, 1)
    assert "127.0.0.1:81" not in r.text
    r = ts.render(source, snap(web=flipped, name="web2"))
    assert counts(ts, source) == (0, 1)
    assert r.text.startswith("upstream web2 {")


def test_equal_instances_in_new_tuples_hit_and_new_objects_miss(tmp_path: Path) -> None:
    text = '{{ nginx.upstream("web", service("web")) }}{{ key("x") }}'
    ts, source = template(tmp_path, text)
    ts.render(source, snap(x="1"))
    # Leaving out an instance of another service rebuilds every tuple, with the same Instances.
    ts.render(source, without(snap(x="2"), [API[0]]))
    assert counts(ts, source) == (1, 0)
    # A refetched service has new (equal) objects: the body runs again, with the same text.
    r = ts.render(source, snap(web=tuple(dataclasses.replace(i) for i in WEB), x="3"))
    assert counts(ts, source) == (0, 1)
    assert (r.text, r.warnings) == full(tmp_path, text, snap(x="3"))


def test_a_hit_still_claims_its_name_so_a_later_duplicate_is_refused(tmp_path: Path) -> None:
    text = (
        '{{ nginx.upstream("web", service("web")) }}{{ nginx.upstream("WEB", service("api")) }}{{ key("x") }}'
    )
    ts, source = template(tmp_path, text)
    first = ts.render(source, snap(x="1"))
    assert first.text.count("upstream ") == 1
    assert first.warnings == ("Skipped upstream 'WEB': nginx already has it as 'web'.",)
    again = ts.render(source, snap(x="2"))
    assert counts(ts, source) == (2, 0)
    assert again.warnings == first.warnings
    assert (again.text, again.warnings) == full(tmp_path, text, snap(x="2"))


def test_a_cached_block_whose_name_is_now_taken_is_refused(tmp_path: Path) -> None:
    text = '{{ nginx.upstream(key("first"), service("api")) }}{{ nginx.upstream("web", service("web")) }}'
    ts, source = template(tmp_path, text)
    ts.render(source, snap(first="other"))
    r = ts.render(
        source, snap(first="WEB")
    )  # the second call equals the last render's, but WEB has its name now
    assert "upstream web " not in r.text
    assert r.warnings == ("Skipped upstream 'web': nginx already has it as 'WEB'.",)
    assert (r.text, r.warnings) == full(tmp_path, text, snap(first="WEB"))
    r = ts.render(source, snap(first="other"))  # and back: the name is free again
    assert "upstream web {" in r.text and r.warnings == ()


def test_a_cached_invalid_name_warns_on_every_render(tmp_path: Path) -> None:
    text = '{{ nginx.upstream("bad name", service("web")) }}{{ key("x") }}'
    ts, source = template(tmp_path, text)
    ts.render(source, snap(x="1"))
    r = ts.render(source, snap(x="2"))
    assert counts(ts, source) == (1, 0)
    assert len(r.warnings) == 1 and "Skipped upstream 'bad name'" in r.warnings[0]


def test_the_cache_keeps_only_what_the_last_render_used(tmp_path: Path) -> None:
    text = (
        '{% for s in services() %}{{ nginx.upstream(s.name ~ key("suffix"), service(s.name)) }}{% endfor %}'
    )
    ts, source = template(tmp_path, text)
    ts.render(source, snap(suffix="_a"))
    ts.render(source, snap(suffix="_b"))
    assert len(ts.blocks.for_source(source)) == 2
    ts.render(source, snap(suffix="_b", api=()))
    assert len(ts.blocks.for_source(source)) == 2
    one = Snapshot.build(
        {ServiceQuery("web"): WEB}, {CatalogQuery(): (ServiceSummary("web"),)}, {KeyQuery("suffix"): ""}
    )
    ts.render(source, one)
    assert len(ts.blocks.for_source(source)) == 1


def test_a_template_whose_data_did_not_change_is_not_rendered_again(tmp_path: Path) -> None:
    ts, source = template(tmp_path, '{{ nginx.upstream("web", service("web")) }}{{ key("x") }}')
    first = ts.render(source, snap(x="1"))
    assert ts.render(source, snap(x="1", y="other")) is first  # y is not read
    assert ts.render(source, snap(api=(), x="1")) is first  # nor api
    assert ts.render(source, snap(x="2")) is not first
    assert ts.render(source, Snapshot.build({ServiceQuery("web"): WEB}, {}, {})).missing == {KeyQuery("x")}


def test_loading_templates_again_forgets_every_text_and_block(tmp_path: Path) -> None:
    ts, source = template(tmp_path, '{{ nginx.upstream("web", service("web")) }}')
    first = ts.render(source, snap())
    assert ts.load() == []
    assert len(ts.blocks.for_source(source)) == 0
    again = ts.render(source, snap())
    assert again is not first and again.text == first.text
    assert counts(ts, source) == (0, 1)


def test_a_new_template_set_starts_empty(tmp_path: Path) -> None:
    ts, _ = template(tmp_path, '{{ nginx.upstream("web", service("web")) }}')
    assert ts.blocks.caches == {}


def test_a_macro_library_of_the_config_folder_is_not_cached(tmp_path: Path) -> None:
    (tmp_path / "nginx.j2").write_text(
        "{% macro upstream(name, instances) %}upstream {{ name }};{% endmacro %}"
    )
    ts, source = template(tmp_path, '{{ nginx.upstream("web", service("web")) }}{{ key("x") }}')
    assert ts.render(source, snap(x="1")).text.startswith("upstream web;")
    ts.render(source, snap(x="2"))
    assert counts(ts, source) == (0, 0)


def test_a_global_the_macro_reads_is_part_of_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    library = tmp_path / "lib"
    library.mkdir()
    (library / "nginx.j2").write_text(
        "{% macro upstream(name, instances) %}{% set claimed = upstream_name(name) %}"
        "upstream {{ claimed }} { {{ mode }} }{% endmacro %}"
    )
    monkeypatch.setattr(block_cache, "LIBRARY_FILE", str(library / "nginx.j2"))
    ts, source = template(tmp_path, '{{ nginx.upstream("web", service("web")) }}{{ key("x") }}')
    ts.env.loader.searchpath.insert(0, str(library))  # type: ignore[union-attr]
    ts.env.globals["mode"] = "classic"
    assert ts.render(source, snap(x="1")).text.startswith("upstream web { classic }")
    ts.render(source, snap(x="2"))
    assert counts(ts, source) == (1, 0)
    # (The imported module keeps the globals it was made with, so the text stays: the key must not.)
    ts.env.globals["mode"] = "dynamic"
    ts.render(source, snap(x="3"))
    assert counts(ts, source) == (0, 1)


def test_a_macro_body_reading_a_function_is_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = tmp_path / "lib"
    library.mkdir()
    (library / "nginx.j2").write_text(
        '{% macro upstream(name, instances) %}upstream {{ upstream_name(name) }} {{ key("y") }};{% endmacro %}'
    )
    monkeypatch.setattr(block_cache, "LIBRARY_FILE", str(library / "nginx.j2"))
    ts, source = template(tmp_path, '{{ nginx.upstream("web", service("web")) }}{{ key("x") }}')
    ts.env.loader.searchpath.insert(0, str(library))  # type: ignore[union-attr]
    ts.render(source, snap(x="1", y="a"))
    assert ts.render(source, snap(x="2", y="b")).text.startswith("upstream web b;")
    assert counts(ts, source) == (0, 0)


def test_the_dynamic_mode_global_is_part_of_the_key_and_cached_blocks_keep_the_hook(tmp_path: Path) -> None:
    text = '{{ nginx.upstream("web", service("web")) }}{{ key("x") }}'
    for dynamic in (False, True):
        source = tmp_path / f"t{dynamic}.j2"
        source.write_text('{% import "nginx.j2" as nginx %}\n' + text)
        ts = TemplateSet([source], dynamic=dynamic)
        assert ts.load() == []
        first = ts.render(source, snap(x="1"))
        again = ts.render(source, snap(x="2"))
        assert counts(ts, source) == (1, 0)
        assert ("balancer_by_lua_block" in again.text) is dynamic
        assert again.text[:-1] == first.text[:-1]
        (spec,) = (s for s in ts.blocks._specs.values() if s is not None)
        assert "nginx_dynamic" in spec.names
