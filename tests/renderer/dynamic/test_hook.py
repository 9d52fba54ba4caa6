"""The macro library's balancer hook and the snippet: exact text, and a real nginx routing by both."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from discovery.model import Instance, ServiceQuery, Snapshot
from harness.lua import LuaNginx
from renderer.config import DynamicConfig
from renderer.dynamic.snippet import LOAD_MODULES, render_snippet
from renderer.template import TemplateSet

HOOK = '    balancer_by_lua_block { require("upstreams.balancer").balance("web") }\n'


def inst(sid: str, port: int, status: str = "passing", weight: int = 1) -> Instance:
    return Instance(
        node="n1", id=sid, name="web", address="127.0.0.1", port=port, status=status, weight=weight
    )


def render(tmp_path: Path, text: str, dynamic: bool, instances: tuple[Instance, ...] = ()) -> str:
    source = tmp_path / "t.j2"
    source.write_text('{% import "nginx.j2" as nginx %}' + text)
    templates = TemplateSet([source], dynamic=dynamic)
    assert templates.load() == []
    return templates.render(source, Snapshot.build({ServiceQuery("web"): instances}, {}, {})).text


def test_the_hook_follows_the_servers_and_precedes_keepalive(tmp_path: Path) -> None:
    instances = (inst("a", 8081), inst("b", 8082, weight=3), inst("c", 8083, "warning"))
    text = render(
        tmp_path,
        '{{ nginx.upstream("web", service("web", passing=false), backup_warning=true, keepalive=16) }}',
        True,
        instances,
    )
    assert text == (
        "upstream web {\n"
        "    server 127.0.0.1:8081;\n"
        "    server 127.0.0.1:8082 weight=3;\n"
        "    server 127.0.0.1:8083 backup;\n"
        f"{HOOK}"
        "    keepalive 16;\n"
        "}"
    )


def test_the_empty_upstream_keeps_its_down_server_and_gets_the_hook(tmp_path: Path) -> None:
    text = render(tmp_path, '{{ nginx.upstream("web", service("web")) }}', True)
    assert "    server 127.0.0.1:1 down;\n" + HOOK in text


@pytest.mark.parametrize("balance", ["least_conn", "ip_hash", "hash $remote_addr", "random"])
def test_an_upstream_with_its_own_balancing_has_no_hook(tmp_path: Path, balance: str) -> None:
    text = render(tmp_path, f'{{{{ nginx.upstream("web", service("web"), balance="{balance}") }}}}', True)
    assert "balancer_by_lua" not in text


def test_without_dynamic_the_output_is_unchanged(tmp_path: Path) -> None:
    template = '{{ nginx.upstream("web", service("web"), keepalive=4) }}'
    on = render(tmp_path, template, True, (inst("a", 8081),))
    off = render(tmp_path, template, False, (inst("a", 8081),))
    assert "balancer_by_lua" not in off
    assert on.replace(HOOK, "") == off


def test_the_snippet_listens_only_on_the_endpoint(tmp_path: Path) -> None:
    text = render_snippet(
        DynamicConfig(enabled=True, endpoint=("127.0.0.2", 9999), state_file=tmp_path / "s.json")
    )
    assert [line.strip() for line in text.splitlines() if line.strip().startswith("listen")] == [
        "listen 127.0.0.2:9999;"
    ]
    assert "lua_shared_dict upstreams 32m;" in text
    assert "client_max_body_size 16m;" in text and "client_body_buffer_size 16m;" in text
    # The load_module lines are comments: they cannot go in http {}.
    assert all(f"# {line}" in text for line in LOAD_MODULES)
    unix = render_snippet(DynamicConfig(enabled=True, endpoint=None, unix=Path("/run/u.sock")))
    assert "listen unix:/run/u.sock;" in unix and "allow unix:;" in unix


def test_an_odd_state_file_path_is_one_lua_string(tmp_path: Path) -> None:
    odd = tmp_path / 'a "quoted" } path;$x'
    text = render_snippet(DynamicConfig(enabled=True, state_file=odd))
    (line,) = [line for line in text.splitlines() if "init_worker_by_lua_block" in line]
    literal = line.split(".start(")[1].removesuffix(") }")
    assert literal.startswith('"') and literal.endswith('"') and literal.count('"') == 2
    assert not set(literal) & set("}{;$")  # nothing nginx's block parser could take as syntax
    decoded = re.sub(r"\\(\d{3})", lambda m: chr(int(m[1])), literal[1:-1])
    assert decoded == str(odd)


def test_a_rendered_hooked_upstream_routes_through_the_lua_balancer(tmp_path: Path) -> None:
    nginx = LuaNginx(tmp_path / "nginx")
    ports = nginx.backends
    instances = (inst("a", ports["b1"]), inst("b", ports["b2"]))
    text = render(tmp_path, '{{ nginx.upstream("primes", service("web"), keepalive=4) }}', True, instances)
    (nginx.server.conf_d / "upstreams.conf").write_text(text)
    nginx.start()
    try:
        assert set(nginx.count(6)) == {"b1", "b2"}  # nothing pushed yet: the file's servers
        assert nginx.push({"primes": [nginx.peer("b4")]})[0] == 200
        assert nginx.count(4) == {"b4": 4}
    finally:
        nginx.stop()


def test_nginx_t_accepts_the_snippet_and_a_hooked_upstream(tmp_path: Path) -> None:
    # What the sidecar's check_command runs before a reload: the module must be loaded for it too.
    nginx = LuaNginx(tmp_path / "nginx")
    nginx.write_upstream(["b1", "b2"])
    nginx.server.write_config()
    check = subprocess.run(nginx.server.check_command, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    # Without the modules, the hook is an unknown directive: the check catches a missing load_module.
    nginx.server.conf.write_text(nginx.server.conf.read_text().replace("load_module", "# load_module"))
    check = subprocess.run(nginx.server.check_command, capture_output=True, text=True, timeout=30)
    assert check.returncode != 0 and "unknown directive" in check.stderr
