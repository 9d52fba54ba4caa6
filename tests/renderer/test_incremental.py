"""Incremental rendering: whatever the sequence of changes, a TemplateSet that reuses what it rendered
before writes exactly what a full render of the same snapshot writes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discovery.model import CatalogQuery, Instance, KeyQuery, ServiceQuery, ServiceSummary, Snapshot
from discovery.publisher import Publisher
from discovery.sites import HOST_META, PATH_META
from renderer import block_loop
from renderer.exclusion import without
from renderer.template import Rendered, TemplateSet

TEMPLATES = {
    "upstreams.j2": '{% import "nginx.j2" as nginx %}\n{{ nginx.upstreams(prefix="u_") }}\n',
    "options.j2": (
        '{% import "nginx.j2" as nginx %}\n'
        '{{ nginx.upstreams(tag="blue", prefix="b_", passing=false, backup_warning=true, keepalive=16) }}\n'
        '{{ nginx.upstreams(tag="green", balance="ip_hash", backup_warning=true) }}\n'
    ),
    "sites.j2": '{% import "nginx.j2" as nginx %}\n{{ nginx.sites("127.0.0.1:8080", backup_warning=true) }}\n',
    # Names that collide without case, and a name from KV: claims must follow every render.
    "calls.j2": (
        '{% import "nginx.j2" as nginx %}\n'
        '{{ nginx.upstream(key("first") or "none", service("api")) }}\n'
        '{{ nginx.upstream("web", service("web"), max_fails=2, fail_timeout="5s") }}\n'
        '{{ nginx.upstream("WEB", service("Web", passing=false), backup_warning=true) }}\n'
        '{{ nginx.upstream("web", service("web")) }}\n'
        '{{ nginx.upstream("api", service("api") | status("passing", "warning")) }}\n'
    ),
    # The same name from nginx.upstreams and a hand-written call (either first), the same call twice,
    # and a datacenter the snapshot does not hold (missing dependencies).
    "mixed.j2": (
        '{% import "nginx.j2" as nginx %}\n'
        '{{ nginx.upstream("u_web", service("web")) }}\n'
        '{{ nginx.upstreams(prefix="u_", passing=false) }}\n'
        '{{ nginx.upstream("U_DB", service("db"), keepalive=4) }}\n'
        '{{ nginx.upstreams(prefix="u_", passing=false) }}\n'
        '{{ nginx.upstreams(tag="blue", dc="far", prefix="f_") }}\n'
        '{% for s in services() %}{{ nginx.upstream("h_" ~ s.name, service(s.name)) }}{% endfor %}\n'
        '{{ nginx.upstreams(prefix=key("first") or "none") }}\n'
    ),
    "handwritten.j2": (
        "{% for s in services() %}{% if s.name is nginx_name %}\n"
        "upstream h_{{ s.name }} {\n"
        '{% for i in service(s.name, passing=false) if i.status != "critical" %}\n'
        '    server {{ i | hostport }} weight={{ i.weight }}{% if i.status == "warning" %} backup{% endif %};\n'
        "{% else %}\n"
        "    server 127.0.0.1:1 down;\n"
        "{% endfor %}\n"
        "}\n"
        "{% endif %}{% endfor %}\n"
    ),
}
NAMES = ("web", "Web", "api", "db", "db-2", "bad name", "x.y")
STATUSES = ("passing", "warning", "critical")
HOSTS = ("", "a.example", "b.example", "a.example,b.example")


def instance_strategy(name: str) -> st.SearchStrategy[Instance]:
    return st.builds(
        lambda n, port, tags, weight, status, host, path: Instance(
            node=f"node{n}",
            id=f"{name}-{n}-{port}",
            name=name,
            address=f"127.0.0.{n + 1}",
            port=port,
            tags=tags,
            meta=tuple(sorted({HOST_META: host, PATH_META: path}.items())) if host else (),
            weight=weight,
            status=status,  # type: ignore[arg-type]
        ),
        st.integers(0, 3),
        st.integers(1, 3),
        st.sampled_from(((), ("blue",), ("green",), ("blue", "green"))),
        st.integers(1, 3),
        st.sampled_from(STATUSES),
        st.sampled_from(HOSTS),
        st.sampled_from(("/", "/api")),
    )


@st.composite
def catalogs(draw: st.DrawFn) -> dict[str, tuple[Instance, ...]]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)))
    return {
        n: tuple(sorted({i.id: i for i in draw(st.lists(instance_strategy(n), max_size=4))}.values()))
        for n in names
    }


CHANGES = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 50), st.sampled_from(STATUSES)),
    st.tuples(st.just("weight"), st.integers(0, 50), st.integers(1, 3)),
    st.tuples(st.just("drop"), st.integers(0, 50), st.none()),
    st.tuples(st.just("replace"), st.none(), catalogs()),
    st.tuples(st.just("key"), st.none(), st.sampled_from((None, "web", "Web", "db", "bad name"))),
    st.tuples(st.just("rebuild"), st.none(), st.none()),  # equal values, new objects
    st.tuples(st.just("leave_out"), st.integers(0, 50), st.none()),  # what left_out.visible does
)


def snapshot(
    catalog: dict[str, tuple[Instance, ...]], first: str | None, series: Publisher | None = None
) -> Snapshot:
    """The snapshot of a catalog; with ``series``, published as a watcher does (it then says what changed)."""
    services: dict[Any, Any] = {ServiceQuery(n): instances for n, instances in catalog.items()}
    for name in NAMES:  # every service a template may ask for has an answer, maybe empty
        services.setdefault(ServiceQuery(name), ())
    tags = {n: tuple(sorted({t for i in instances for t in i.tags})) for n, instances in catalog.items()}
    summaries = tuple(sorted(ServiceSummary(n, t) for n, t in tags.items()))
    if series is None:
        return Snapshot.build(services, {CatalogQuery(): summaries}, {KeyQuery("first"): first})
    data = {**services, CatalogQuery(): summaries, KeyQuery("first"): first}
    made = series.publish(data) or series.snapshot
    assert made is not None
    return made


def change(
    snap: Snapshot,
    catalog: dict[str, tuple[Instance, ...]],
    step: tuple[object, ...],
    series: Publisher | None = None,
) -> Snapshot:
    """Apply one change to the catalog in place; the next snapshot (sharing unchanged tuples)."""
    kind, where, what = step
    everyone = [(n, k) for n, instances in catalog.items() for k in range(len(instances))]
    first = snap.get(KeyQuery("first"))
    if kind == "key":
        return snapshot(catalog, what, series)  # type: ignore[arg-type]
    if kind == "replace":
        catalog.clear()
        catalog.update(what)  # type: ignore[arg-type]
    elif kind == "rebuild":
        return dataclasses.replace(
            snap, services=tuple((q, tuple(dataclasses.replace(i) for i in v)) for q, v in snap.services)
        )
    elif everyone and isinstance(where, int):
        name, k = everyone[where % len(everyone)]
        instances = list(catalog[name])
        if kind == "leave_out":
            return without(snap, [instances[k]])
        if kind == "drop":
            del instances[k]
        else:
            field = "status" if kind == "flip" else "weight"
            instances[k] = dataclasses.replace(instances[k], **{field: what})
        catalog[name] = tuple(instances)
    return snapshot(catalog, first, series)  # type: ignore[arg-type]


# The library's upstreams macro as it was, a Jinja loop: nginx.upstreams must write what it wrote.
JINJA_LOOP = """\
{% macro jinja_upstreams(tag=none, dc=none, prefix="", passing=true, backup_warning=false, balance=none, keepalive=none) -%}
{% for s in services(tag=tag, dc=dc) %}
{{ nginx.upstream(prefix ~ s.name, service(s.name, dc=dc, passing=passing), backup_warning=backup_warning, balance=balance, keepalive=keepalive) }}
{% endfor %}
{%- endmacro %}
"""


def as_jinja_loop(text: str) -> str:
    """A template whose nginx.upstreams calls are the Jinja loop (after the import, on its first line)."""
    head, _, rest = text.partition("\n")
    return f"{head}\n{JINJA_LOOP}{rest.replace('nginx.upstreams(', 'jinja_upstreams(')}"


def templates(folder: Path, jinja_loop: bool = False) -> TemplateSet:
    sources = []
    for name, text in TEMPLATES.items():
        (folder / name).write_text(as_jinja_loop(text) if jinja_loop and "nginx.upstreams(" in text else text)
        sources.append(folder / name)
    ts = TemplateSet(sources)
    assert ts.load() == []
    return ts


def same(incremental: list[Rendered], full: list[Rendered]) -> None:
    for a, b in zip(incremental, full, strict=True):
        assert a.text == b.text, a.source
        assert (a.warnings, a.dependencies, a.missing) == (b.warnings, b.dependencies, b.missing), a.source


@pytest.mark.parametrize("as_published", [False, True], ids=["built", "published"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=catalogs(), steps=st.lists(CHANGES, max_size=8))
def test_incremental_render_equals_a_full_render_after_any_changes(
    tmp_path: Path,
    start: dict[str, tuple[Instance, ...]],
    steps: list[tuple[object, ...]],
    as_published: bool,
) -> None:
    """``published``: snapshots made as the watcher makes them, which say what changed (block_loop's
    shortcut); ``built``: snapshots that do not, compared instead."""
    incremental, full = templates(tmp_path), templates(tmp_path)
    (tmp_path / "loop").mkdir(exist_ok=True)
    jinja_loop = templates(tmp_path / "loop", jinja_loop=True)  # its blocks through the macro hook
    catalog = dict(start)
    series = Publisher() if as_published else None
    snap = snapshot(catalog, None, series)
    for step in [None, *steps]:
        if step is not None:
            snap = change(snap, catalog, step, series)
        done, errors = incremental.render_all(snap)
        assert full.load() == []  # forgets every cached text and block: a full render
        expected, expected_errors = full.render_all(snap)
        assert errors == expected_errors == []
        same(done, expected)
        looped, loop_errors = jinja_loop.render_all(snap)
        assert loop_errors == []
        same(done, looped)
    same(incremental.render_all(snap)[0], templates(tmp_path).render_all(snap)[0])


def fifty_services() -> dict[str, tuple[Instance, ...]]:
    """s0 ... s49, two instances each (127.0.0.1 and 127.0.0.2, port 1000 + k)."""
    return {
        f"s{k}": (
            Instance("n", f"s{k}-1", f"s{k}", "127.0.0.1", 1000 + k),
            Instance("n", f"s{k}-2", f"s{k}", "127.0.0.2", 1000 + k),
        )
        for k in range(50)
    }


def test_a_flip_reuses_every_other_block_and_writes_what_a_full_render_writes(tmp_path: Path) -> None:
    ts = templates(tmp_path)
    source = tmp_path / "upstreams.j2"
    catalog = fifty_services()
    snap = snapshot(catalog, None)
    ts.render(source, snap)
    assert ts.blocks.for_source(source).misses == 50
    snap = change(snap, catalog, ("flip", 14, "critical"))
    text = ts.render(source, snap).text
    assert (ts.blocks.for_source(source).hits, ts.blocks.for_source(source).misses) == (49, 1)
    assert text == templates(tmp_path).render(source, snap).text
    assert "127.0.0.1:1007" not in text and "127.0.0.2:1007" in text


def test_a_flip_in_a_watchers_series_skips_the_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A snapshot that says what changed re-renders that block only: the other rows are not visited."""
    ts = templates(tmp_path)
    source = tmp_path / "upstreams.j2"
    catalog = fifty_services()
    series = Publisher()
    snap = snapshot(catalog, None, series)
    ts.render(source, snap)
    walked: list[int] = []
    walk = block_loop._texts
    mine = ts.blocks.for_source(source)

    def counted(*args: Any) -> list[str]:
        walked.extend([1] if args[1] is mine else [])  # the full renders below walk, of course
        return walk(*args)

    monkeypatch.setattr(block_loop, "_texts", counted)
    for n, status in enumerate(["critical", "passing", "warning"]):
        snap = change(snap, catalog, ("flip", 14 + 2 * n, status), series)
        text = ts.render(source, snap).text
        assert text == templates(tmp_path).render(source, snap).text
    assert walked == []
    assert (ts.blocks.for_source(source).hits, ts.blocks.for_source(source).misses) == (49, 1)
    # A snapshot outside the series (what left_out.visible makes) is walked, and written the same.
    snap = change(snap, catalog, ("leave_out", 3, None), series)
    assert ts.render(source, snap).text == templates(tmp_path).render(source, snap).text
    assert walked == [1]
