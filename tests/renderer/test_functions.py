"""The template functions ports need: ls, tree, node, nodes, datacenters (watched like service()),
env (only what the config allows), parse_json, to_json, regex_match, regex_replace, by_tag."""

from __future__ import annotations

import re
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from discovery.model import (
    CatalogQuery,
    DatacentersQuery,
    Instance,
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
from discovery.nodes import parse_node, parse_nodes
from plumbing.errors import ConfigError, TemplateError
from renderer.config import load_config
from renderer.functions import by_tag, parse_json, regex_replace, split_text, to_json
from renderer.template import TemplateSet
from tests.support.consul_agent import ConsulAgent
from tests.support.nginx import NGINX
from tests.support.sidecar import UPSTREAMS, SidecarProcess
from tests.support.waiting import wait_until

NODE = Node("n1", "10.0.0.1", "dc1", "id-1", (("rack", "r1;x"),))
SNAP = Snapshot.build(
    {ServiceQuery("web"): (Instance("n1", "w1", "web", "10.0.0.1", 81, ("a", "b")), Instance("n1", "w2", "web", "10.0.0.1", 82, ("b",)))},
    {},
    {},
    {
        PrefixQuery("cfg/"): (("cfg/", ""), ("cfg/a", "1"), ("cfg/b", "x y"), ("cfg/sub/", ""), ("cfg/sub/c", "3")),
        NodesQuery(): (NODE,),
        NodeQuery("n1"): NodeInfo(NODE, (NodeService("w1", "web", "10.0.0.1", 81, ("a",)),)),
        NodeQuery("gone"): None,
        DatacentersQuery(): ("dc1", "dc2"),
    },
)  # fmt: skip


def render(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    source = tmp_path / "t.j2"
    source.write_text(text)
    ts = TemplateSet([source], {source: env or {}})
    assert ts.load() == []
    rendered = ts.render(source, SNAP)
    assert not rendered.missing
    return rendered.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{% for p in ls('cfg') %}{{ p.key }}={{ p.value }},{% endfor %}", 'a=1,b="x y",'),
        ("{% for p in tree('/cfg/') %}{{ p.key }}={{ p.value }},{% endfor %}", 'a=1,b="x y",sub/c=3,'),
        ("{{ node('n1').node.address }} {{ node('n1').services[0].port }} {{ node('gone') }}", "10.0.0.1 81 "),
        ("{% for n in nodes() %}{{ n.name }} {{ n.meta.rack }}{% endfor %}", 'n1 "r1;x"'),
        ("{{ datacenters() | join(',') }}", "dc1,dc2"),
        ("{% for tag, xs in service('web') | by_tag | dictsort %}{{ tag }}:{{ xs | length }} {% endfor %}", "a:1 b:2 "),
        ("{{ service('web') | with_tag('a') | length }} {{ service('web') | by_tag('b') | length }}", "1 2"),
        ("{{ ('{\"a\": [1, 2]}' | parse_json).a[1] }} {{ none | parse_json | length }}", "2 0"),
        # Values from Consul, not constants: Jinja folds constant expressions at compile time.
        ("{{ ls('cfg') | map(attribute='value') | list | to_json }}", '"[\\"1\\",\\"x y\\"]"'),
        ("{{ nodes()[0].name | regex_match('^n[0-9]+$') }} {{ (nodes()[0].name ~ '-12') | regex_replace('(\\\\w+)-(?P<n>\\\\d+)', '${n}.$1$$') }}", 'True "12.n1%24"'),
    ],
)  # fmt: skip
def test_function_reads_the_snapshot_and_is_escaped(tmp_path: Path, text: str, expected: str) -> None:
    assert render(tmp_path, text) == expected


def test_functions_record_what_they_read(tmp_path: Path) -> None:
    source = tmp_path / "t.j2"
    source.write_text("{{ ls('a') }}{{ tree('b/c') }}{{ node('x') }}{{ nodes() }}{{ datacenters() }}")
    ts = TemplateSet([source])
    assert ts.load() == []
    rendered = ts.render(source, Snapshot())
    expected = {PrefixQuery("a/"), PrefixQuery("b/c/"), NodeQuery("x"), NodesQuery(), DatacentersQuery()}
    assert rendered.dependencies == rendered.missing == expected


def test_env_reads_only_allowed_variables(tmp_path: Path) -> None:
    assert render(tmp_path, "{{ env('HOSTNAME') }}", {"HOSTNAME": "web-1;x"}) == '"web-1;x"'
    with pytest.raises(TemplateError, match="env\\(\\): the variable 'HOME' is not allowed"):
        render(tmp_path, "{{ env('HOME') }}", {"HOSTNAME": "h"})


def test_config_resolves_the_allowed_environment_once(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text("{{ env('HOSTNAME') }}|{{ env('UNSET') }}\n")
    config = tmp_path / "sidecar.toml"
    config.write_text(
        f'[[template]]\nsource = "t.j2"\ndestination = "{tmp_path}/out.conf"\nenv = ["HOSTNAME", "UNSET"]\n'
    )
    loaded = load_config(config, {"HOSTNAME": "h1", "PATH": "/bin"})
    assert loaded.templates[0].env == (("HOSTNAME", "h1"), ("UNSET", ""))
    config.write_text(f'[[template]]\nsource = "t.j2"\ndestination = "{tmp_path}/out.conf"\nenv = ["A-B"]\n')
    with pytest.raises(ConfigError, match="'env' holds 'A-B', which is not an environment variable name"):
        load_config(config, {})


def test_pure_helpers_follow_consul_template() -> None:
    assert parse_json("") == {} and split_text("", ",") == [] and split_text("a,b", ",") == ["a", "b"]
    assert regex_replace("ab", "(a)(x)?", "[$2$1${9}]") == "[a]b"  # a group that did not match is empty
    assert to_json(("a", {"k": (1,)})) == '["a",{"k":[1]}]'
    assert list(by_tag([{"tags": ("z", "a", "z")}])) == ["a", "z"]
    with pytest.raises(ValueError, match="not JSON"):
        parse_json("{")


def test_parsers_drop_invalid_nodes_and_services() -> None:
    nodes = parse_nodes(
        [{"Node": "b", "Address": "10.0.0.2"}, {"Node": "a", "Address": "bad addr"}, "x"], "dc1"
    )
    assert nodes == (Node("b", "10.0.0.2", "dc1"),)
    info = parse_node(
        {"Node": {"Node": "b", "Address": "10.0.0.2"},
         "Services": {"s2": {"ID": "s2", "Service": "web", "Port": 80}, "s1": {"ID": "s1", "Service": "x", "Port": -1}}}
    )  # fmt: skip
    assert info == NodeInfo(Node("b", "10.0.0.2"), (NodeService("s2", "web", "10.0.0.2", 80),))
    assert parse_node(None) is None


# With a real Consul and a running sidecar -----------------------------------------------------------


def put_key(consul: ConsulAgent, key: str, value: str) -> None:
    request = urllib.request.Request(f"{consul.address}/v1/kv/{key}", data=value.encode(), method="PUT")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.read().strip() == b"true"


TEMPLATE = """\
dcs {{ datacenters() | join(",") }};
{% for p in ls("weights") %}
key {{ p.key }} {{ p.value }};
{% endfor %}
{% for p in tree("tree") %}
deep {{ p.key }};
{% endfor %}
{% for n in nodes() %}
{% set info = node(n.name) %}
{% for s in (info.services if info else []) if s.name != "consul" %}
on_node {{ s.name }} {{ s.port }};
{% endfor %}
{% endfor %}
"""


@pytest.fixture
def sidecar(tmp_path: Path, consul: ConsulAgent) -> Iterator[Callable[[], str]]:
    (tmp_path / "t.j2").write_text(TEMPLATE)
    out = tmp_path / "out.conf"
    config = tmp_path / "sidecar.toml"
    config.write_text(
        f'[consul]\naddress = "{consul.address}"\n[status]\nlisten = ""\n'
        '[nginx]\ncheck_command = ["true"]\nreload_command = ["true"]\n'
        f'[[template]]\nsource = "t.j2"\ndestination = "{out}"\n'
    )
    put_key(consul, "weights/a", "1")
    put_key(consul, "tree/x/y", "")
    dry = subprocess.run(
        [UPSTREAMS, "render", "--dry", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert dry.returncode == 0, dry.stderr
    assert "dcs dc1;\nkey a 1;\ndeep x/y;\n" in dry.stdout and "on_node" not in dry.stdout
    proc = SidecarProcess(config)
    yield lambda: out.read_text() if out.exists() else ""
    proc.stop()


@pytest.mark.slow
def test_kv_prefixes_and_node_services_are_watched(consul: ConsulAgent, sidecar: Callable[[], str]) -> None:
    wait_until(lambda: "key a 1;" in sidecar(), what="the first render")
    put_key(consul, "weights/b", "7")
    put_key(consul, "weights/deeper/c", "9")  # not a top-level key: ls leaves it out
    put_key(consul, "tree/z", "")
    wait_until(lambda: "key b 7;" in sidecar() and "deep z;" in sidecar(), what="the new keys rendered")
    assert "deeper" not in sidecar()
    consul.register("api", "api-1", 8080)  # no check, on the agent's own node
    wait_until(lambda: "on_node api 8080;" in sidecar(), what="the node's new service rendered")
    consul.deregister("api-1")
    wait_until(lambda: "on_node" not in sidecar(), what="the node's service gone")
    assert re.search(r"^dcs dc1;$", sidecar(), re.M)


def test_sites_macro_serves_one_server_per_host_and_drops_unsafe_values(tmp_path: Path) -> None:
    def app(sid: str, port: int, status: str = "passing", **meta: str) -> Instance:
        return Instance("n1", sid, "app", "127.0.0.1", port, status=status, meta=tuple(sorted(meta.items())))  # type: ignore[arg-type]

    snap = Snapshot.build(
        {
            ServiceQuery("app"): (app("a1", 81, **{"nginx-host": "a.test,B.test"}), app("a2", 82, "critical")),
            ServiceQuery("api"): (app("p1", 83, **{"nginx-host": "a.test", "nginx-path": "/api"}),),
            ServiceQuery("evil"): (app("e1", 84, **{"nginx-host": "x;y", "nginx-path": "/"}),
                                   app("e2", 85, **{"nginx-host": "ok.test", "nginx-path": "/ { return 200"})),
        },
        {CatalogQuery(): (ServiceSummary("api"), ServiceSummary("app"), ServiceSummary("evil"))},
        {},
    )  # fmt: skip
    source = tmp_path / "sites.j2"
    source.write_text('{% import "nginx.j2" as nginx %}\n{{ nginx.sites(listen="127.0.0.1:8080") }}\n')
    ts = TemplateSet([source])
    assert ts.load() == []
    text = ts.render(source, snap).text
    flat = " ".join(text.split())
    assert "server_name x;y" not in text and "return 200" not in text and "evil" not in text
    assert "server { listen 127.0.0.1:8080 default_server; server_name _; return 404; }" in flat
    assert "server_name a.test; location / { proxy_pass http://site_app;" in flat
    assert "location /api { proxy_pass http://site_api;" in flat
    assert "server_name b.test; location / { proxy_pass http://site_app;" in flat
    assert "upstream site_app { server 127.0.0.1:81; }" in flat  # the critical instance is left out
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{ access_log off; include {source}.out; }}\n"
    )
    Path(f"{source}.out").write_text(text)
    check = subprocess.run([NGINX, "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stderr
