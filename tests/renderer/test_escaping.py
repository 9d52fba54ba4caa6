"""Every filter, test and global of the environment, fed hostile Consul data: no value adds a statement.

The tables below name every filter, test and global the environment has, with how each is applied. A
filter added later (by us or by a Jinja upgrade) is not in the table and fails the first tests, so its
output is looked at before it ships.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.model import (
    CatalogQuery,
    DatacentersQuery,
    Instance,
    KeyQuery,
    Node,
    NodeInfo,
    NodeQuery,
    NodeService,
    NodesQuery,
    PrefixQuery,
    ServiceQuery,
    ServiceSummary,
    Snapshot,
)
from plumbing.errors import TemplateError
from renderer.sandbox import REFUSED_FILTERS
from renderer.template import TemplateSet
from tests.support.nginx_tokens import tokens
from tests.support.sidecar import UPSTREAMS

# Each is written as a value and inside a comment: a value that ended the comment would let the `;`
# after it through as an empty statement.
# v: a hostile string; vs: hostile strings (tags); m: hostile mapping (meta); i: an instance; n: its port;
# s: a service from services() with a hostile name.
FILTERS = {
    "abs": "n | abs",
    "attr": "v | attr('upper')",
    "batch": "vs | batch(2) | list",
    "by_tag": "[i] | by_tag(v)",
    "capitalize": "v | capitalize",
    "center": "v | center(9)",
    "count": "vs | count",
    "d": "none | d(v)",
    "default": "none | default(v)",
    "dictsort": "m | dictsort",
    "filesizeformat": "n | filesizeformat",
    "first": "(vs + [v]) | first",
    "float": "v | float",
    "format": "'%s;%s' | format(v, m)",
    "groupby": "[i] | groupby('node') | list",
    "hostport": "i | hostport",
    "ident": "v | ident",
    "indent": "(v ~ '\n' ~ v) | indent(2, true)",
    "int": "v | int",
    "items": "m | items | list",
    "join": "vs | join(v)",
    "last": "(vs + [v]) | last",
    "length": "vs | length",
    "list": "v | list",
    "lower": "v | lower",
    "map": "vs | map('upper') | list",
    "max": "(vs + [v]) | max",
    "min": "(vs + [v]) | min",
    "nginx": "v | nginx",
    "pprint": "m | pprint",
    "random": "(vs + [v]) | random",
    "reject": "vs | reject('eq', v) | list",
    "rejectattr": "[i] | rejectattr('node', 'eq', v) | list",
    "replace": "v | replace('a', v)",
    "reverse": "v | reverse",
    "round": "n | round",
    "select": "vs | select | list",
    "selectattr": "[i] | selectattr('tags') | list",
    "slice": "vs | slice(2) | list",
    "sort": "vs | sort",
    "status": "[i] | status('passing')",
    "string": "m | string",
    "sum": "[n, n] | sum",
    "title": "v | title",
    "tojson": "{'m': m, 'v': v, 'i': i} | tojson",
    "trim": "v | trim",
    "truncate": "v | truncate(9)",
    "unique": "vs | unique | list",
    "upper": "v | upper",
    "urlencode": "m | urlencode",
    "wordcount": "v | wordcount",
    "wordwrap": "v | wordwrap(5)",
    "with_tag": "[i] | with_tag(v)",
    "parse_json": "('{\"a\": ' ~ (v | tojson) ~ '}') | parse_json",
    "to_json": "{'m': m, 'v': v, 'i': i} | to_json",
    "regex_match": "v | regex_match('a')",
    "regex_replace": "v | regex_replace('(a)', v ~ '$1')",
    "split_text": "v | split_text(';')",
}
_NUMERIC = ("divisibleby", "even", "odd")
_COMPARING = ("!=", "<", "<=", "==", ">", ">=", "eq", "equalto", "ge", "greaterthan", "gt", "le")
_COMPARING += ("lessthan", "lt", "ne", "sameas", "in")
_OTHER = ("boolean", "callable", "defined", "escaped", "false", "filter", "float", "integer", "iterable")
_OTHER += ("lower", "mapping", "nginx_name", "none", "number", "sequence", "string", "test", "true")
_OTHER += ("undefined", "upper")
TESTS = {
    **{t: f"[n, n + 1] | select('{t}'{', 3' if t == 'divisibleby' else ''}) | list" for t in _NUMERIC},
    **{t: f"(vs + [v]) | select('{t}', {'vs' if t == 'in' else 'v'}) | list" for t in _COMPARING},
    **{t: f"(vs + [v, n, none]) | select('{t}') | list" for t in _OTHER},
}
GLOBALS = {
    "dict": "dict(a=v, b=m)",
    "key": "key(v)",
    "namespace": "namespace(a=v)",
    "range": "range(n % 7) | list",
    "service": "service(s)",
    "services": "services(tag=v)",
    "upstream_name": "upstream_name(v)",
    "env": "env('HOSTILE')",
    "ls": "ls('v')",
    "tree": "tree('v')",
    "node": "node(v)",
    "nodes": "nodes()",
    "datacenters": "datacenters()",
    "nginx_sites": "nginx_sites()",
    "nginx_dynamic": "nginx_dynamic",
    # nginx.upstreams' loop; a datacenter the snapshot does not hold, so no block: TRUSTED has blocks.
    "upstream_blocks": "upstream_blocks(nginx.upstream, dc=v ~ '@')",
}
HOSTILE = [
    "a; include /etc/shadow; #",
    "} server { listen 1; ",
    '"; return 200 "x',
    "'; x '",
    "$host ${x}",
    "a\nb;\r\n}",
    "\\",
    "#",
    "{",
    "ok\n",
    "",
]


def test_every_filter_of_the_environment_is_in_the_table() -> None:
    env = TemplateSet([]).env
    assert set(env.filters) == set(FILTERS), "a filter was added or removed: add it to FILTERS, checked"
    assert not set(env.filters) & set(REFUSED_FILTERS)


def test_every_test_and_global_of_the_environment_is_in_the_table() -> None:
    env = TemplateSet([]).env
    assert set(env.tests) == set(TESTS), "a test was added or removed: add it to TESTS"
    assert set(env.globals) == set(GLOBALS), "a global was added or removed: add it to GLOBALS"


def label(kind: str, name: str) -> str:
    return f"{kind}_{name}".replace("!", "bang").replace("=", "eq").replace("<", "lt").replace(">", "gt")


LINES = [
    *((label("filter", k), e) for k, e in FILTERS.items()),
    *((label("test", k), e) for k, e in TESTS.items()),
    *((label("global", k), e) for k, e in GLOBALS.items()),
]
# Inside {% autoescape %} Jinja's own filters make Markup: it is still escaped like any other value.
IN_AUTOESCAPE = [(label("autoescape", k), FILTERS[k]) for k in ("join", "replace", "format", "tojson")]
IN_AUTOESCAPE += [("autoescape_concat", "(v | nginx) ~ v"), ("autoescape_markup", "[v | nginx, v] | join(v)")]
SOURCE = (
    '{% import "nginx.j2" as nginx %}'
    "{% set v = key('v') %}{% set i = service('web')[0] %}{% set vs = i.tags | list %}{% set m = i.meta %}"
    "{% set n = i.port %}{% set s = services()[0] %}\n"
    + "".join(f"add_header {k} {{{{ {e} }}}}; # {{{{ {e} }}}} ;\n" for k, e in LINES)
    + "{% autoescape true %}\n"
    + "".join(f"add_header {k} {{{{ {e} }}}}; # {{{{ {e} }}}} ;\n" for k, e in IN_AUTOESCAPE)
    + "{% endautoescape %}\n"
)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[TemplateSet, Path]:
    source = tmp_path_factory.mktemp("escaping") / "all.j2"
    source.write_text(SOURCE)
    ts = TemplateSet([source], {source: {"HOSTILE": HOSTILE[0]}})
    assert ts.load() == []
    return ts, source


def snapshot(v: str, vs: list[str], m: dict[str, str]) -> Snapshot:
    instance = Instance(
        node=v, id=v, name="web", address="10.0.0.1", port=8080, tags=tuple(vs), meta=tuple(sorted(m.items()))
    )
    node = Node(v, "10.0.0.1", v, v, tuple(sorted(m.items())))
    hosted = NodeService(v, v, "10.0.0.1", 80, tuple(vs), tuple(sorted(m.items())))
    return Snapshot.build(
        {ServiceQuery("web"): (instance,)},
        {CatalogQuery(): (ServiceSummary(v or "x", tuple(vs)),)},
        {KeyQuery("v"): v},
        {
            PrefixQuery("v/"): (("v/" + v, v), ("v/k", v)),
            NodeQuery(v): NodeInfo(node, (hosted,)),
            NodesQuery(): (node,),
            DatacentersQuery(): (v,),
        },
    )


def statements(text: str) -> list[list[str]]:
    out, current = [], []
    for tok in tokens(text):
        assert tok not in ("{", "}"), f"a value opened or closed a block: {text!r}"
        if tok == ";":
            out.append(current)
            current = []
        else:
            current.append(tok)
    assert current == [], f"text after the last statement: {current!r}"
    return out


hostile = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40))


@settings(max_examples=60, deadline=None)
@given(v=hostile, vs=st.lists(hostile, max_size=3), m=st.dictionaries(hostile, hostile, max_size=2))
def test_no_filter_test_or_global_lets_a_value_add_or_end_a_statement(
    compiled: tuple[TemplateSet, Path], v: str, vs: list[str], m: dict[str, str]
) -> None:
    ts, source = compiled
    text = ts.render(source, snapshot(v, vs, m)).text
    found = statements(text)
    assert [s[1] for s in found] == [k for k, _ in LINES + IN_AUTOESCAPE]
    for statement in found:
        assert statement[0] == "add_header" and len(statement) <= 3, statement
    assert "$" not in text


@pytest.mark.parametrize("name", sorted(REFUSED_FILTERS))
def test_html_filters_are_refused_when_the_template_loads_with_the_reason(tmp_path: Path, name: str) -> None:
    source = tmp_path / "t.j2"
    source.write_text(f"ok\nadd_header X {{{{ key('v') | {name} }}}};\n")
    (error,) = TemplateSet([source]).load()
    assert f"t.j2:2: filter '{name}' " in str(error)
    assert REFUSED_FILTERS[name].split(",")[0] in str(error)


def test_a_filter_block_is_refused_even_in_an_included_template(tmp_path: Path) -> None:
    (tmp_path / "part.j2").write_text("{% filter upper %}{{ key('v') }}{% endfilter %}\n")
    source = tmp_path / "t.j2"
    source.write_text('{% include "part.j2" %}\n')
    ts = TemplateSet([source])
    assert ts.load() == []
    with pytest.raises(TemplateError, match=r"\{% filter %\} blocks are not allowed"):
        ts.render(source, Snapshot.build({}, {}, {KeyQuery("v"): "x"}))


def test_a_call_block_only_calls_a_macro(tmp_path: Path) -> None:
    source = tmp_path / "t.j2"
    source.write_text("{% call key('v').format() %}{% endcall %}\n")
    ts = TemplateSet([source])
    assert ts.load() == []
    with pytest.raises(TemplateError, match=r"a \{% call %\} block can only call a macro"):
        ts.render(source, Snapshot.build({}, {}, {KeyQuery("v"): "a; include /etc/shadow; #"}))


TRUSTED = """{% import "nginx.j2" as nginx %}
{% macro weight(x) %}weight={{ x }}{% endmacro %}
{% macro wrap() %}upstream w { {{ caller() }} }{% endmacro %}
{% block servers %}{% endblock %}
{{ nginx.upstream(v, [i], keepalive=v, max_fails=v, fail_timeout=v) }}
{{ nginx.upstream("fixed", service("web", passing=false), backup_warning=true) }}
{{ nginx.upstreams(prefix=v, passing=false, keepalive=v) }}
{{ upstream_blocks(nginx.upstream, prefix=v ~ "_b", backup_warning=true) }}
{% call wrap() %}server {{ i | hostport }} {{ weight(v) }};{% endcall %}
{% set block %}{{ v }}{% endset %}
add_header X {{ block }};
add_header Y {{ self.servers() }}{{ v | nginx }};
"""


@settings(max_examples=60, deadline=None)
@given(v=hostile, vs=st.lists(hostile, max_size=3), m=st.dictionaries(hostile, hostile, max_size=2))
def test_macro_and_block_output_is_written_as_it_is_and_stays_safe(
    tmp_path_factory: pytest.TempPathFactory, v: str, vs: list[str], m: dict[str, str]
) -> None:
    source = tmp_path_factory.mktemp("trusted") / "t.j2"
    source.write_text("{% set v = key('v') %}{% set i = service('web')[0] %}\n" + TRUSTED)
    ts = TemplateSet([source])
    assert ts.load() == []
    text = ts.render(source, snapshot(v, vs, m)).text
    words = tokens(text)
    heads = [words[0]] + [words[k + 1] for k, w in enumerate(words[:-1]) if w in (";", "{", "}")]
    assert set(heads) <= {"upstream", "server", "keepalive", "add_header", "}"}, text
    assert text.count("upstream fixed {") == 1 and "upstream w {" in text
    assert "$" not in text


@settings(max_examples=40, deadline=None)
@given(
    v=hostile, w=hostile, vs=st.lists(hostile, max_size=3), m=st.dictionaries(hostile, hostile, max_size=2)
)
def test_blocks_reused_from_the_cache_are_what_a_full_render_writes_for_hostile_values(
    tmp_path_factory: pytest.TempPathFactory, v: str, w: str, vs: list[str], m: dict[str, str]
) -> None:
    """The block cache and the Python-side loop hand out only text the macro made from the same values."""
    source = tmp_path_factory.mktemp("reused") / "t.j2"
    head = "{% set v = key('v') %}{% set i = service('web')[0] %}\nadd_header W {{ key('w') }};\n"
    source.write_text(head + TRUSTED)
    ts = TemplateSet([source])
    assert ts.load() == []
    first = snapshot(v, vs, m)
    first = dataclasses.replace(first, keys=(*first.keys, (KeyQuery("w"), "first")))
    ts.render(source, first)
    # The same instance objects, only another key: the template runs again and every block is reused.
    second = dataclasses.replace(first, keys=(*first.keys[:-1], (KeyQuery("w"), w)))
    text = ts.render(source, second).text
    assert ts.blocks.for_source(source).hits >= 3, "the cached blocks were not reused"
    fresh = TemplateSet([source])
    assert fresh.load() == []
    assert text == fresh.render(source, second).text
    words = tokens(text)
    heads = [words[0]] + [words[k + 1] for k, word in enumerate(words[:-1]) if word in (";", "{", "}")]
    assert set(heads) <= {"upstream", "server", "keepalive", "add_header", "}"}, text
    assert "$" not in text


def test_upstreams_check_refuses_an_html_filter_saying_why(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text("add_header X {{ key('note') | e }};\n")
    config = tmp_path / "sidecar.toml"
    config.write_text(
        '[consul]\naddress = "127.0.0.1:1"\n[[template]]\nsource = "t.j2"\ndestination = "o.conf"\n'
    )
    out = subprocess.run(
        [UPSTREAMS, "check", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode != 0
    assert out.stderr.strip() == (
        f"upstreams: {tmp_path / 't.j2'}:1: filter 'e' is HTML escaping, which leaves nginx's ; {{ }} and # "
        "alone; every {{ }} is already escaped for nginx."
    )


def test_the_examples_of_the_issue_are_one_token_each(tmp_path: Path) -> None:
    source = tmp_path / "t.j2"
    source.write_text("{% set i = service('web')[0] %}a {{ i.meta.note }};\nb {{ i.meta | tojson }};\n")
    ts = TemplateSet([source])
    assert ts.load() == []
    note = "a; include /etc/shadow; #"
    text = ts.render(source, snapshot("n", [], {"note": note})).text
    assert text == 'a "a; include /etc/shadow; #";\nb "{\\"note\\": \\"a; include /etc/shadow; #\\"}";\n'


ATTRIBUTES = [
    ("{'name': 'a'}", "name"),
    ("{'items': 'a'}", "items"),  # a dict's method comes first, as in Jinja's sandbox
    ("{'__class__': 'a'}", "__class__"),
    ("{}", "name"),
    ("{'a': 1}", "update"),  # a method that changes the dict: refused
    ("nginx", "upstream"),
    ("nginx", "missing"),
    ("nginx", "__class__"),
    ("nginx", "_body_stream"),
]


@pytest.mark.parametrize(("obj", "attribute"), ATTRIBUTES)
def test_the_sandboxs_quick_attribute_answers_are_those_of_jinjas_sandbox(
    tmp_path: Path, obj: str, attribute: str
) -> None:
    import jinja2.sandbox

    source = tmp_path / "t.j2"
    source.write_text(
        '{% import "nginx.j2" as nginx %}'
        f"{{% set x = ({obj}).{attribute} %}}{{{{ (x is defined, x is callable, x is mapping) | string }}}}"
    )
    ts = TemplateSet([source])
    assert ts.load() == []
    ours = jinja2.sandbox.ImmutableSandboxedEnvironment.getattr
    with pytest.MonkeyPatch.context() as patch:
        text = ts.render(source, Snapshot()).text
        patch.setattr(type(ts.env), "getattr", ours)
        assert ts.load() == []
        assert ts.render(source, Snapshot()).text == text
