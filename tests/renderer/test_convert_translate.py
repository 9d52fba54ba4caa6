"""The Go template lexer, parser and translator: each construct, rendered by our sandbox as Go would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
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
from renderer.convert.golex import lex
from renderer.convert.goparse import Action, Chain, Cmd, Field, Ident, If, Lit, Pipe, Range, Text, parse
from renderer.convert.translate import translate
from renderer.sandbox import make_environment
from renderer.template import TemplateSet


def inst(sid: str, port: int, tags: tuple[str, ...] = (), status: str = "passing", **kw: object) -> Instance:
    return Instance(
        node="n1", id=sid, name="web", address="10.0.0.1", port=port, tags=tags, status=status, **kw
    )  # type: ignore[arg-type]


NODE = Node("n1", "10.0.0.1", "dc1", "id-1", (("rack", "r1"),))
SNAP = Snapshot.build(
    {
        ServiceQuery("web"): (
            inst("w1", 81, ("blue", "v1"), meta=(("weight", "3"),), node_meta=(("rack", "r1"),)),
            inst("w2", 82, ("v2",), status="warning"),
            inst("w3", 83, ("blue",), status="critical"),
        ),
        ServiceQuery("web", "dc2"): (inst("z1", 91),),
        ServiceQuery("web", "dc2", "n2"): (
            inst("z2", 92, ("blue",), "warning", node_address="10.9.9.9"),
            inst("z1", 91),
        ),
        ServiceQuery("nope"): (),
    },
    {
        CatalogQuery(): (ServiceSummary("api", ("public",)), ServiceSummary("web", ("blue", "v1", "v2"))),
        CatalogQuery("dc2"): (ServiceSummary("far"),),
    },
    {
        KeyQuery("cfg/max"): "7",
        KeyQuery("cfg/none"): None,
        KeyQuery("cfg/json"): '{"a": {"b": [1, 2]}, "name": "x"}',
        KeyQuery("cfg/bad"): "a;b",
    },
    {
        PrefixQuery("cfg/"): (("cfg/", ""), ("cfg/a", "1"), ("cfg/sub/", ""), ("cfg/sub/c", "x;y")),
        NodesQuery(): (NODE, Node("n2", "10.0.0.2", "dc1")),
        NodeQuery("n1"): NodeInfo(NODE, (NodeService("w1", "web", "10.0.0.1", 81, ("blue",)),)),
        NodeQuery("gone"): None,
        DatacentersQuery(): ("dc1", "dc2"),
    },
)


def go(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """Translate a Go template, render it against SNAP; the output and the problems' sentences."""
    result = translate(parse(text, "t.ctmpl"), "t.ctmpl")
    source = tmp_path / "t.j2"
    source.write_text(result.text)
    ts = TemplateSet([source], {source: env or {}})
    assert ts.load() == [], result.text
    rendered = ts.render(source, SNAP)
    assert not rendered.missing, rendered.missing
    return rendered.text, [f"{p.line}: {p.sentence}" for p in result.problems]


CASES = [
    ('{{range service "web"}}{{.ID}}:{{.Port}} {{end}}', "w1:81 "),
    ('{{range service "web|any"}}{{.ID}}={{.Status}} {{end}}', "w1=passing w2=warning w3=critical "),
    ('{{range service "web|passing,warning"}}{{.ID}} {{end}}', "w1 w2 "),
    ('{{range service "web" "any"}}{{.ID}} {{end}}', "w1 w2 w3 "),
    ('{{range service "blue.web|any"}}{{.ID}} {{end}}', "w1 w3 "),
    ('{{range service "web@dc2"}}{{.ID}}{{end}}', "z1"),
    ('{{range $i, $s := service "web|any"}}{{$i}}{{$s.ID}} {{end}}', "0w1 1w2 2w3 "),
    ('{{range service "nope"}}x{{else}}none{{end}}', "none"),
    ("{{range services}}{{.Name}}[{{join \",\" .Tags}}] {{end}}", "api[public] web[blue,v1,v2] "),
    ('{{range service "web"}}{{.ServiceMeta.weight}}|{{index .ServiceMeta "zone"}}|{{.Weights.Passing}}{{end}}', "3|\"\"|1"),  # an empty value is an empty nginx token
    ('{{range service "web"}}{{.NodeMeta.rack}}/{{.Node}}/{{.Name}}{{end}}', "r1/n1/web"),
    ('{{if eq 1 2 1}}a{{else if lt 2 1}}b{{else}}c{{end}}', "a"),
    ('{{if and (ne 1 2) (not false) (or false "x")}}yes{{end}}', "yes"),
    ('{{if le 2 2}}{{if ge 1 2}}no{{else}}ok{{end}}{{end}}', "ok"),
    ('{{with key "cfg/max"}}max={{.}}{{else}}unset{{end}} {{with key "cfg/none"}}x{{else}}unset{{end}}', "max=7 unset"),
    ('{{keyOrDefault "cfg/none" "16"}} {{keyOrDefault "cfg/max" "16"}}', "16 7"),
    ('{{ $x := key "cfg/max" }}{{ $x }}{{ $x = "8" }}{{ $x }}', "78"),
    ('{{printf "%s-%d" "a" 5}} {{printf "%s:%d" (index (service "web") 0).Address 80}}', "a-5 10.0.0.1:80"),
    ('{{len (service "web|any")}} {{index (service "web|any") 1 | printf "%v" | len | lt 0}}', "3 true"),
    ('{{/* a comment */}}x{{- /* trimmed */ -}}  y', "xy"),
    ('{{"Hello" | toLower}} {{"a" | toUpper}} {{"  t  " | trimSpace}} {{"web api" | toTitle}}', 'hello A t "Web Api"'),
    ('{{replaceAll "." "_" "a.b.c"}} {{split "," "a,b" | len}} {{"a" | in (split "," "a,b")}}', "a_b_c 2 true"),
    ('{{"v12" | regexMatch "v[0-9]+"}} {{"web-12" | regexReplaceAll "(\\\\w+)-(\\\\d+)" "$2.$1"}}', "true 12.web"),
    ('{{with $j := key "cfg/json" | parseJSON}}{{index $j.a.b 1}} {{$j.name}} {{toJSON $j.a}}{{end}}', '2 x "{\\"b\\":[1,2]}"'),
    ('{{range service "web|any"}}{{if .Tags | contains "blue"}}{{.ID}}{{end}}{{end}}', "w1w3"),
    ('{{if containsAny (split "," "x,v2") (index (service "web|any") 1).Tags}}any{{end}}', "any"),
    ('{{if containsAll (split "," "blue,v1") (index (service "web") 0).Tags}}all{{end}}', "all"),
    ('{{if containsNone (split "," "x,y") (index (service "web") 0).Tags}}none{{end}}', "none"),
    ('{{range $t, $is := service "web|any" | byTag}}{{$t}}:{{range $is}}{{.ID}}{{end}} {{end}}', "blue:w1w3 v1:w1 v2:w2 "),
    ('{{scratch.Set "a" "1"}}{{scratch.SetX "a" "2"}}{{scratch.Get "a"}}{{if scratch.Key "b"}}no{{end}}', "1"),
    ('{{range service "web|any"}}{{scratch.MapSet "m" .ID .Port}}{{end}}{{range scratch.MapValues "m"}}{{.}},{{end}}', "81,82,83,"),
    ("{{key \"cfg/bad\"}}", '"a;b"'),
    ('{{range service "web"}}{{.Tags}}{{end}} {{eq 1 2}}', "[blue v1] false"),  # Go's fmt of a list, a bool  # a value from Consul is still one escaped nginx token
    ("a {{- 1 -}} b {{- \"\" }}\n {{2}}", "a1b\n 2"),
    # Every part of the query form at once: tag, datacenter, near (Consul's order kept), health filter.
    ('{{range service "blue.web@dc2~n2|passing,warning"}}{{.ID}}@{{.NodeAddress}} {{end}}', "z2@10.9.9.9 "),
    ('{{range service "web@dc2~n2"}}{{.ID}} {{end}}{{range service "web@dc2~n2" "any"}}{{.ID}} {{end}}', "z1 z2 z1 "),
    ('{{range ls "cfg"}}{{.Key}}={{.Value}},{{end}}', "a=1,"),
    ('{{range tree "cfg/"}}{{.Key}}={{.Value}},{{end}}', 'a=1,sub/c="x;y",'),
    ('{{with node "n1"}}{{.Node.Address}} {{.Node.Meta.rack}}{{range .Services}} {{.Service}}:{{.Port}}{{end}}{{end}}', "10.0.0.1 r1 web:81"),
    ('{{with node "gone"}}x{{else}}no node{{end}}', "no node"),
    ("{{range nodes}}{{.Node}}={{.Address}} {{end}}", "n1=10.0.0.1 n2=10.0.0.2 "),
    ("{{range datacenters}}{{.}} {{end}}{{len datacenters}}", "dc1 dc2 2"),
    ('{{range services "@dc2"}}{{.Name}}{{end}}', "far"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_go_construct_renders_as_go_would(tmp_path: Path, text: str, expected: str) -> None:
    out, problems = go(tmp_path, text)
    assert problems == []
    assert out == expected


def test_env_converts_and_reads_what_the_template_may_read(tmp_path: Path) -> None:
    out, problems = go(tmp_path, '{{env "HOSTNAME"}}|{{env "HOSTNAME" | toUpper}}', {"HOSTNAME": "web-1;x"})
    assert problems == []
    assert out == '"web-1;x"|"WEB-1;X"'


UNCONVERTIBLE = [
    ('{{with secret "kv/x"}}{{.Data.v}}{{end}}', "secret reads Vault"),
    ('{{plugin "x" "y"}}', "plugin runs an external program"),
    ('{{"x" | writeToFile "/tmp/a" "" "" "0644"}}', "writeToFile writes files"),
    ('{{define "x"}}a{{end}}{{template "x"}}', "{{define}} names a template"),
    ('{{range service "web"}}{{break}}{{end}}', "{{break}} has no equivalent"),
    ("{{.}}", "'.' at the top"),
    ("{{$.Name}}", "'$' (the template's root value)"),
    (
        '{{range service "web"}}{{.NodeTaggedAddresses}}{{end}}',
        "field .NodeTaggedAddresses of a service instance",
    ),
    ('{{printf "%q" "a"}}', "printf verb %q"),
    ('{{key "a@dc2"}}', "another datacenter"),
    ('{{with node "n1@dc2"}}{{.Node.Address}}{{end}}', "a node in another datacenter"),
    ('{{range nodes "@dc2"}}{{.Node}}{{end}}', "nodes takes no datacenter"),
    ('{{ $n := 0 }}{{range service "web"}}{{ $n = 1 }}{{end}}', "inside a range does not reach outside"),
]


@pytest.mark.parametrize(("text", "sentence"), UNCONVERTIBLE)
def test_unconvertible_part_is_reported_with_its_line_and_the_rest_still_renders(
    tmp_path: Path, text: str, sentence: str
) -> None:
    out, problems = go(tmp_path, f"before\n{text}\nafter")
    assert len(problems) >= 1 and problems[0].startswith("2: ") and sentence in problems[0], problems
    assert out.startswith("before\n") and out.endswith("\nafter")


def test_lexer_applies_trim_markers_and_keeps_minus_numbers() -> None:
    tokens = lex("a \n {{- -3 }} \n b {{ 4 -}} \n c", "t")
    assert [t.value for t in tokens if t.kind in ("text", "number")] == ["a", "-3", " \n b ", "4", "c"]


def test_parser_builds_pipelines_chains_and_else_if() -> None:
    (node,) = parse('{{if .Tags | contains "x"}}a{{else if (index .L 0).Name}}b{{end}}', "t")
    assert isinstance(node, If)
    assert node.pipe == Pipe((Cmd((Field(("Tags",)),)), Cmd((Ident("contains"), Lit("x")))))
    (inner,) = node.orelse
    assert isinstance(inner, If) and inner.body == (Text("b", 1),)
    chain = inner.pipe.cmds[0].args[0]
    assert isinstance(chain, Chain) and chain.names == ("Name",)


def test_parser_reads_range_declarations_and_custom_delimiters() -> None:
    (node,) = parse('[[range $i, $s := service "web"]][[$s.ID]][[end]]', "t", "[[", "]]")
    assert isinstance(node, Range) and node.pipe.decl == ("$i", "$s")
    assert isinstance(node.body[0], Action)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='{}-/* $.|()"`:=,abif\n end range with else 1', max_size=40))
def test_any_input_either_parses_and_translates_or_is_a_template_error(text: str) -> None:
    try:
        nodes = parse(text, "t")
    except TemplateError as exc:
        assert str(exc).startswith("t:")
        return
    translate(nodes, "t")  # never raises: what it cannot translate becomes a problem


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{if 1}}a", "t:1: {{if}} has no {{end}}"),
        ("a\n{{end}}", "t:2: unexpected {{end}}"),
        ("{{ range }}x{{end}}", "t:1: empty action"),
        ("{{ 1 | }}", "missing command after '|'"),
        ('{{ "open }}', "unexpected"),
        ("{{/* open", "t:1: unclosed comment"),
        ("{{ x", "unclosed action"),
    ],
)
def test_syntax_errors_name_the_file_and_line(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)):
        parse(text, "t")


# Property: whitespace and braces come out exactly as Go writes them, whatever the trim markers.
_TEXT = st.text(alphabet=" \t\nx{}#%;", max_size=8)
_TAG = st.sampled_from(["{{if true}}", "{{- if true}}", "{{if true -}}", "{{- if true -}}"])
_END = st.sampled_from(
    ["{{end}}", "{{- end}}", "{{end -}}", "{{- end -}}", "{{end}}{{/* c */}}", "{{end}}{{/* c */ -}}"]
)
_ENV = make_environment([], {})


def _go_reference(pieces: list[str]) -> str:
    """Go's output for text and always-true if/end tags alternating: trim markers applied, tags removed."""
    texts = pieces[0::2]
    for i, tag in enumerate(pieces[1::2]):
        if tag.startswith("{{- "):
            texts[i] = texts[i].rstrip(" \t\r\n")
        if tag.endswith(" -}}") or tag.endswith("*/ -}}"):
            texts[i + 1] = texts[i + 1].lstrip(" \t\r\n")
    return "".join(texts)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_TEXT, _TAG, _TEXT, _END), max_size=4), _TEXT)
def test_whitespace_and_braces_survive_translation_exactly(
    blocks: list[tuple[str, str, str, str]], tail: str
) -> None:
    pieces = [p for block in blocks for p in block] + [tail]
    texts = pieces[0::2]
    # Where Go's own lexer would read "{{" (and fail), there is nothing to compare.
    assume(not any("{{" in t for t in texts) and not any(t.endswith("{") for t in texts[:-1]))
    jinja = translate(parse("".join(pieces), "t"), "t").text
    assert _ENV.from_string(jinja).render() == _go_reference(pieces)
