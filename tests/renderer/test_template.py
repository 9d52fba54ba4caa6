"""Templates: data functions, dependency tracking, escaping, the sandbox and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from discovery.model import CatalogQuery, Instance, KeyQuery, ServiceQuery, ServiceSummary, Snapshot
from plumbing.errors import TemplateError
from renderer.escape import nginx_ident, nginx_token
from renderer.template import TemplateSet, parse_service_spec
from tests.support.nginx_tokens import directives, tokens


def inst(
    sid: str,
    status: str = "passing",
    tags: tuple[str, ...] = (),
    address: str = "10.0.0.1",
    port: int = 80,
    name: str = "web",
    **kw: object,
) -> Instance:
    return Instance(node="n1", id=sid, name=name, address=address, port=port, tags=tags, status=status, **kw)  # type: ignore[arg-type]


def render(tmp_path: Path, text: str, snapshot: Snapshot | None = None) -> str:
    source = tmp_path / "t.j2"
    source.write_text(text)
    ts = TemplateSet([source])
    errors = ts.load()
    if errors:
        raise errors[0]
    return ts.render(source, snapshot or Snapshot()).text


SNAP = Snapshot.build(
    {
        ServiceQuery("web"): (inst("a", tags=("blue",)), inst("b", "warning"), inst("c", "critical")),
        ServiceQuery("web", "dc2"): (inst("z"),),
    },
    {
        CatalogQuery(): (
            ServiceSummary("api", ("nginx",)),
            ServiceSummary("web", ("blue", "nginx")),
            ServiceSummary("db"),
        )
    },
    {KeyQuery("cfg/max"): "7", KeyQuery("cfg/none"): None},
)


def test_service_returns_passing_instances_by_default(tmp_path: Path) -> None:
    out = render(tmp_path, "{% for i in service('web') %}{{ i.id }} {% endfor %}", SNAP)
    assert out == "a "


def test_service_with_passing_false_returns_every_instance_with_its_status(tmp_path: Path) -> None:
    out = render(
        tmp_path, "{% for i in service('web', passing=false) %}{{ i.id }}={{ i.status }} {% endfor %}", SNAP
    )
    assert out == "a=passing b=warning c=critical "


def test_consul_template_tag_name_at_dc_form(tmp_path: Path) -> None:
    assert parse_service_spec("blue.web@dc2") == ("web", "blue", "dc2", None)
    assert parse_service_spec("v1.2.web") == ("web", "v1.2", None, None)
    assert parse_service_spec("web~node1") == ("web", None, None, "node1")
    assert render(tmp_path, "{{ service('blue.web') | map(attribute='id') | join(',') }}", SNAP) == "a"
    assert render(tmp_path, "{{ service('web@dc2') | map(attribute='id') | join(',') }}", SNAP) == "z"


def test_services_sorted_by_name_and_filtered_by_tag(tmp_path: Path) -> None:
    assert render(tmp_path, "{{ services() | map(attribute='name') | join(',') }}", SNAP) == "api,db,web"
    assert (
        render(tmp_path, "{{ services(tag='nginx') | map(attribute='name') | join(',') }}", SNAP) == "api,web"
    )


def test_key_with_default(tmp_path: Path) -> None:
    assert render(tmp_path, "{{ key('cfg/max') }} {{ key('cfg/none', 'd') }}", SNAP) == "7 d"


def test_dependencies_and_missing_are_recorded(tmp_path: Path) -> None:
    source = tmp_path / "t.j2"
    source.write_text("{{ service('web') | length }}{{ service('api') | length }}{{ key('/k') }}")
    ts = TemplateSet([source])
    assert ts.load() == []
    r = ts.render(source, SNAP)
    assert r.dependencies == {ServiceQuery("web"), ServiceQuery("api"), KeyQuery("k")}
    assert r.missing == {ServiceQuery("api"), KeyQuery("k")}


def test_macro_library_upstream_with_weights_backup_and_ipv6(tmp_path: Path) -> None:
    snap = Snapshot.build(
        {ServiceQuery("web"): (inst("a", weight=5), inst("b", "warning"), inst("c", address="::1", port=81))},
        {},
        {},
    )
    out = render(
        tmp_path,
        '{% import "nginx.j2" as nginx %}{{ nginx.upstream("web", service("web", passing=false), backup_warning=true, keepalive=8) }}',
        snap,
    )
    assert "server 10.0.0.1:80 weight=5;" in out
    assert "server 10.0.0.1:80 backup;" in out
    assert "server [::1]:81;" in out
    assert "keepalive 8;" in out


def test_macro_library_never_marks_everything_backup(tmp_path: Path) -> None:
    snap = Snapshot.build({ServiceQuery("web"): (inst("b", "warning"),)}, {}, {})
    out = render(
        tmp_path,
        '{% import "nginx.j2" as nginx %}{{ nginx.upstream("web", service("web", passing=false), backup_warning=true) }}',
        snap,
    )
    assert "backup" not in out and "server 10.0.0.1:80;" in out


def test_macro_library_empty_upstream_is_valid_and_refuses_at_once(tmp_path: Path) -> None:
    out = render(tmp_path, '{% import "nginx.j2" as nginx %}{{ nginx.upstream("web", []) }}')
    assert "server 127.0.0.1:1 down;" in out


def test_macro_library_one_upstream_per_tagged_service(tmp_path: Path) -> None:
    snap = Snapshot.build(
        {ServiceQuery("api"): (inst("x"),), ServiceQuery("web"): (inst("a"),)},
        {
            CatalogQuery(): (
                ServiceSummary("api", ("nginx",)),
                ServiceSummary("web", ("nginx",)),
                ServiceSummary("db"),
            )
        },
        {},
    )
    out = render(
        tmp_path, '{% import "nginx.j2" as nginx %}{{ nginx.upstreams(tag="nginx", prefix="svc_") }}', snap
    )
    assert "upstream svc_api {" in out and "upstream svc_web {" in out and "db" not in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ ''.__class__.__mro__ }}", "refused by the sandbox|unsafe"),
        ("{{ cycler }}", "unknown function or variable 'cycler'"),
        ("{{ range(10**9) | list }}", "(?i)range too big"),
        ("{{ 'a' * 100000000 }}", "too large"),
        ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "recurses too deeply"),
        ("{{ nosuch('x') }}", "unknown function or variable 'nosuch'"),
        ("{{ 1 | nosuchfilter }}", "No filter named 'nosuchfilter'\\.$"),
        ("{{ 'x' | safe }}", "filter 'safe' would write a value from Consul as it is"),
        ("{{ service('not a name!') }}", "is not a service name"),
        ("{% for %}", "t.j2:1:"),
        ("ok\n{{ service('web')[0].nope.deeper }}", "t.j2:2:"),
    ],
)
def test_hostile_or_broken_templates_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(tmp_path, text, SNAP)


def test_a_broken_edit_keeps_the_last_good_compiled_template(tmp_path: Path) -> None:
    source = tmp_path / "t.j2"
    source.write_text("good {{ key('cfg/max') }}")
    ts = TemplateSet([source])
    assert ts.load() == []
    source.write_text("{% if %}")
    (error,) = ts.load()
    assert str(source) in str(error)
    assert ts.render(source, SNAP).text == "good 7"


def test_escaping_keeps_safe_values_bare_and_quotes_the_rest() -> None:
    assert nginx_token("10.0.0.1:80") == "10.0.0.1:80"
    assert nginx_token("a b") == '"a b"'
    assert nginx_token('x";\ninclude /etc/passwd;') == '"x\\";\\ninclude /etc/passwd;"'
    assert nginx_token("$host") == '"%24host"'
    assert nginx_token("") == '""'
    assert nginx_token("0\n") == '"0\\n"'  # a final newline is escaped too (a regex `$` lets it through)
    assert nginx_ident("my service;{x}") == "my_service__x_"


@settings(max_examples=300, deadline=None)
@example("0\n")
@given(st.text(max_size=200))
def test_any_string_becomes_exactly_one_token(value: str) -> None:
    line = f"add_header X-Meta {nginx_token(value)};\n# comment {nginx_token(value)}\n"
    assert directives(line) == ["add_header"]
    assert len(tokens(line)) == 4
    assert "$" not in line and line.count("\n") == 2


@settings(max_examples=100, deadline=None)
@given(
    tags=st.lists(st.text(max_size=40), max_size=4),
    meta=st.dictionaries(st.text(max_size=10), st.text(max_size=60), max_size=3),
    name=st.text(max_size=30),
)
def test_hostile_instance_data_cannot_add_directives(
    tmp_path_factory: pytest.TempPathFactory, tags: list[str], meta: dict[str, str], name: str
) -> None:
    snap = Snapshot.build(
        {
            ServiceQuery("web"): (
                Instance(
                    node=name,
                    id=name,
                    name="web",
                    address="10.0.0.1",
                    port=80,
                    tags=tuple(tags),
                    meta=tuple(sorted(meta.items())),
                ),
            )
        },
        {},
        {},
    )
    text = """{% import "nginx.j2" as nginx %}{{ nginx.upstream(service('web')[0].id, service('web')) }}
{% for i in service('web') %}# {{ i.node }} {{ i.tags | join(',') }}
add_header X-Tags {{ i.tags | join(' ') }};
{% for k, v in i.meta | dictsort %}add_header {{ k }} {{ v }};
{% endfor %}{% endfor %}"""
    out = render(tmp_path_factory.mktemp("h"), text, snap)
    assert set(directives(out)) <= {"upstream", "server", "add_header"}
    assert "$" not in out


def test_unicode_lookalikes_of_nginx_syntax_are_quoted_text() -> None:
    # Fullwidth semicolon and braces, the Greek question mark: nginx does not treat them as syntax,
    # and they are quoted anyway because they are outside the bare-token alphabet.
    for value in ("a\uff1binclude x", "\uff5b\uff5d", "b\u037e", "\u2028line"):
        token = nginx_token(value)
        assert token.startswith('"') and token.endswith('"')
        assert directives(f"add_header X {token};") == ["add_header"]


ODD = ["..", "e v i l", "a/b", "evil?index=1&wait=1s", "evil#frag", "x" * 300, "ev\u202eil", "api.v2", "API"]
LOOP = """{% import "nginx.j2" as nginx %}
{% for s in services() %}
{{ nginx.upstream(s.name, service(s.name)) }}
{% endfor %}
"""


def odd_snapshot() -> Snapshot:
    names = [*ODD, "api", "prime"]
    return Snapshot.build(
        {ServiceQuery(n): (inst(f"{n}-1", name=n, port=1000 + i),) for i, n in enumerate(names)},
        {CatalogQuery(): tuple(ServiceSummary(n) for n in names)},
        {},
    )


def test_a_name_from_services_is_taken_exactly_by_service(tmp_path: Path) -> None:
    snap = odd_snapshot()
    for call in ("service(s.name)", "service(s)", "service(service(s.name)[0].name)"):
        text = "{% for s in services() %}{{ s.name | ident }}=" + "{{ " + call + " | length }} {% endfor %}"
        out = render(tmp_path, text, snap)
        assert "api.v2=1 " in out and "e_v_i_l=1 " in out and "=0" not in out, (call, out)


def test_literal_shorthand_still_reads_tag_and_datacenter(tmp_path: Path) -> None:
    assert render(tmp_path, "{{ service('blue.web') | map(attribute='id') | join(',') }}", SNAP) == "a"
    # a name built in the template is text, so it is read in the shorthand form too
    assert render(tmp_path, "{{ service('blue' ~ '.web') | length }}", SNAP) == "1"


def test_names_nginx_cannot_use_are_skipped_with_one_warning_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = render(tmp_path, LOOP, odd_snapshot())
    upstreams = [line for line in out.splitlines() if line.startswith("upstream ")]
    assert upstreams == [f"upstream {n} {{" for n in ("API", "api.v2", "prime", "x" * 300)]
    assert set(directives(out)) == {"upstream", "server"}
    for name in ("..", "e v i l", "a/b", "evil?index=1&wait=1s", "evil#frag", "ev\u202eil"):
        assert caplog.text.count(f"Skipped upstream {name!r}: nginx takes only") == 1, name
    assert caplog.text.count("Skipped upstream 'api': nginx already has it as 'API'") == 1


def test_a_skipped_upstream_is_warned_about_once_across_renders(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "t.j2"
    source.write_text(LOOP)
    ts = TemplateSet([source])
    assert ts.load() == []
    for _ in range(3):
        rendered = ts.render(source, odd_snapshot())
    assert len(rendered.warnings) == 7
    assert caplog.text.count("Skipped upstream 'e v i l'") == 1


def test_the_upstreams_macro_skips_odd_names_and_keeps_the_others(tmp_path: Path) -> None:
    out = render(
        tmp_path, '{% import "nginx.j2" as nginx %}{{ nginx.upstreams(prefix="svc_") }}', odd_snapshot()
    )
    assert "upstream svc_prime {" in out and "upstream svc_api.v2 {" in out
    assert "svc_e" not in out and "upstream svc_a_b" not in out


def test_nginx_name_test_guards_hand_written_blocks(tmp_path: Path) -> None:
    text = "{% for s in services() if s.name is nginx_name %}{{ s.name }} {% endfor %}"
    assert render(tmp_path, text, odd_snapshot()).split() == [
        "API",
        "api",
        "api.v2",
        "prime",
        "x" * 300,
    ]
