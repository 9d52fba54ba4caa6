"""`upstreams convert` on configs: HCL and -template flags to sidecar.toml, reload commands to [nginx],
what needs a hand listed with file:line, and the exit codes."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from renderer.config import load_config
from renderer.convert import convert
from renderer.convert.reload import CHECK, NginxPlan, nginx_plan
from renderer.convert.report import exit_code
from tests.support.sidecar import UPSTREAMS

SEED = 'upstream primes {\n    {{range service "prime"}}\n    server {{.Address}}:8080;{{end}}\n}\n'


@pytest.mark.parametrize(
    ("command", "plan"),
    [
        ("systemctl reload nginx", NginxPlan(reload_command=("systemctl", "reload", "nginx"))),
        ("nginx -s reload", NginxPlan(reload_command=("nginx", "-s", "reload"))),
        ("systemctl kill -s SIGHUP nginx", NginxPlan(reload_command=("systemctl", "kill", "-s", "SIGHUP", "nginx"))),
        ("systemctl kill --signal=HUP nginx.service",
         NginxPlan(reload_command=("systemctl", "kill", "--signal=HUP", "nginx.service"))),
        ("kill -HUP $(cat /run/nginx.pid)", NginxPlan(pid_file="/run/nginx.pid")),
        ("kill -s HUP `cat /var/run/nginx.pid`", NginxPlan(pid_file="/var/run/nginx.pid")),
        ("nginx -t && systemctl reload nginx", NginxPlan(reload_command=("systemctl", "reload", "nginx"))),
        ("sudo nginx -t -c /srv/n.conf && sudo nginx -c /srv/n.conf -s reload",
         NginxPlan((*CHECK, "-c", "/srv/n.conf"), reload_command=("sudo", "nginx", "-c", "/srv/n.conf", "-s", "reload"))),
        (["systemctl", "reload", "nginx"], NginxPlan(reload_command=("systemctl", "reload", "nginx"))),
    ],
)  # fmt: skip
def test_a_command_that_reloads_nginx_maps_to_the_nginx_table(
    command: str | list[str], plan: NginxPlan
) -> None:
    assert nginx_plan(command) == plan


@pytest.mark.parametrize(
    "command",
    [
        "systemctl restart nginx",
        "service haproxy reload",
        "rm -f /tmp/x && nginx -s reload",
        "nginx -s reload; curl http://127.0.0.1/",
        "kill -HUP $(pidof nginx)",
        "nginx -s reload && systemctl reload nginx",
    ],
)
def test_a_command_that_does_anything_else_is_not_mapped(command: str) -> None:
    assert nginx_plan(command) is None


def write_hcl(tmp_path: Path, body: str) -> Path:
    (tmp_path / "web.ctmpl").write_text(SEED)
    (tmp_path / "conf.d").mkdir(exist_ok=True)
    path = tmp_path / "ct.hcl"
    path.write_text(body)
    return path


def test_hcl_settings_convert_to_the_sidecar_tables(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("")
    hcl = write_hcl(
        tmp_path,
        """consul {
  address = "127.0.0.1:8501"
  token   = "s3cr3t"
  ssl {
    enabled = true
    verify  = false
    ca_cert = "ca.pem"
  }
}
block_query_wait = "2m"
wait {
  min = "2s"
  max = "10s"
}
template {
  source      = "web.ctmpl"
  destination = "conf.d/web.conf"
  perms       = 0644
  backup      = true
  command     = "kill -HUP $(cat /run/nginx.pid)"
}
template {
  contents    = "upstream b { {{- range service \\"b\\" }} server {{ .Address }}:80; {{- end }} }"
  destination = "conf.d/b.conf"
}
template {
  contents    = <<EOF
upstream c {
  {{ range service "c" }}server {{ .Address }}:80;{{ end }}
}
EOF
  destination = "conf.d/c.conf"
}
""",
    )
    problems = convert(hcl, [], tmp_path / "out", tmp_path, {})
    assert problems == []
    toml = tomllib.loads((tmp_path / "out" / "sidecar.toml").read_text())
    assert toml["consul"] == {
        "address": "https://127.0.0.1:8501", "verify": False, "ca_file": str(tmp_path / "ca.pem"),
        "block_query_wait": "2m", "token_file": "consul-token",
    }  # fmt: skip
    assert toml["wait"] == {"min": "2s", "max": "10s"}
    assert toml["nginx"] == {"check_command": ["nginx", "-t", "-q"], "pid_file": "/run/nginx.pid"}
    assert toml["template"] == [
        {
            "source": "web.j2",
            "destination": str(tmp_path / "conf.d/web.conf"),
            "perms": "0644",
            "backup": True,
        },
        {"source": "b.conf.j2", "destination": str(tmp_path / "conf.d/b.conf")},
        {"source": "c.conf.j2", "destination": str(tmp_path / "conf.d/c.conf")},
    ]
    assert (
        (tmp_path / "out" / "c.conf.j2")
        .read_text()
        .startswith('upstream c {\n  {%+ for instance in service("c") %}')
    )
    token = tmp_path / "out" / "consul-token"
    assert token.read_text() == "s3cr3t\n" and token.stat().st_mode & 0o777 == 0o600
    assert "s3cr3t" not in (tmp_path / "out" / "sidecar.toml").read_text()


def test_the_converted_config_loads_as_upstreams_check_reads_it(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("")
    hcl = write_hcl(tmp_path, 'template {\n  source = "web.ctmpl"\n  destination = "conf.d/web.conf"\n}\n')
    assert convert(hcl, [], tmp_path / "out", tmp_path, {}) == []
    config = load_config(tmp_path / "out" / "sidecar.toml", {})
    assert [t.source.name for t in config.templates] == ["web.j2"]


def test_custom_delimiters_are_honoured(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "d.ctmpl").write_text('[[range service "web"]][[.Address]] [[end]]{{ not an action }}')
    hcl = tmp_path / "ct.hcl"
    hcl.write_text(
        'template {\n  source = "d.ctmpl"\n  destination = "conf.d/d.conf"\n'
        '  left_delimiter = "[["\n  right_delimiter = "]]"\n}\n'
    )
    assert convert(hcl, [], tmp_path / "out", tmp_path, {}) == []
    text = (tmp_path / "out" / "d.j2").read_text()
    assert 'for instance in service("web")' in text and "{%+ raw %}{{ not an action }}" in text


def test_parts_that_need_a_hand_are_listed_with_file_and_line_and_the_rest_is_written(tmp_path: Path) -> None:
    (tmp_path / "v.ctmpl").write_text(
        'a\n{{ with secret "kv/db" }}{{ .Data.pw }}{{ end }}\nb {{ key "x" }}\n'
    )
    hcl = write_hcl(
        tmp_path,
        """vault {
  address = "https://vault:8200"
}
exec {
  command = "nginx"
}
template {
  source      = "web.ctmpl"
  destination = "conf.d/web.conf"
  command     = "service haproxy reload"
}
template {
  source      = "v.ctmpl"
  destination = "conf.d/v.conf"
}
""",
    )
    problems = convert(hcl, [], tmp_path / "out", tmp_path, {})
    shown = [str(p) for p in problems]
    assert shown == [
        f"{hcl}:1: needs a hand: 'vault': Vault is not supported: secrets cannot be rendered by upstreams.",
        f"{hcl}:4: needs a hand: 'exec': exec mode (supervising a child process) is not supported; run nginx under systemd.",
        f"{hcl}:7: needs a hand: the command 'service haproxy reload' does not just reload nginx, and the sidecar "
        "runs no other command after a render; run it another way.",
        f"{tmp_path / 'v.ctmpl'}:2: needs a hand: secret reads Vault, which upstreams does not talk to.",
    ]
    assert exit_code(problems) == 1
    assert "{# upstreams convert: line 2 not converted" in (tmp_path / "out" / "v.j2").read_text()
    check = subprocess.run([UPSTREAMS, "check", "--config", str(tmp_path / "out" / "sidecar.toml")],
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    assert check.returncode == 0, check.stderr


def run_convert(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([UPSTREAMS, "convert", *args, "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)  # fmt: skip


def test_exit_codes_say_converted_needs_a_hand_or_unreadable(tmp_path: Path) -> None:
    (tmp_path / "web.ctmpl").write_text(SEED)
    (tmp_path / "bad.ctmpl").write_text("ok\n{{ if }}\n")
    dest = tmp_path / "web.conf"
    done = run_convert(tmp_path, "--template", f"web.ctmpl:{dest}:nginx -s reload")
    assert done.returncode == 0, done.stderr
    assert "everything converted" in done.stdout
    hand = run_convert(tmp_path, "--template", f"web.ctmpl:{dest}:/usr/local/bin/notify")
    assert hand.returncode == 1
    assert "--template:1: needs a hand: the command '/usr/local/bin/notify'" in hand.stderr
    bad = run_convert(
        tmp_path, "--template", f"bad.ctmpl:{tmp_path}/bad.conf", "--template", f"web.ctmpl:{dest}"
    )
    assert bad.returncode == 2
    assert f"{tmp_path}/bad.ctmpl:2: unreadable: not a Go template consul-template can parse" in bad.stderr
    assert (tmp_path / "out" / "web.j2").is_file()  # the readable one is still written
    (tmp_path / "broken.hcl").write_text("template {\n  source = \n")
    broken = run_convert(tmp_path, str(tmp_path / "broken.hcl"))
    assert broken.returncode == 2
    assert f"upstreams: {tmp_path}/broken.hcl is not valid HCL" in broken.stderr
    missing = run_convert(tmp_path, "--template", f"nope.ctmpl:{dest}")
    assert missing.returncode == 2 and "cannot read the template" in missing.stderr


def test_wait_string_default_delimiters_and_template_waits(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "d.ctmpl").write_text('<<range service "web">><<.Port>><<end>>')
    hcl = tmp_path / "ct.hcl"
    hcl.write_text(
        'wait = "1s:4s"\ndefault_delimiters {\n  left = "<<"\n  right = ">>"\n}\n'
        'template {\n  source = "d.ctmpl"\n  destination = "conf.d/d.conf"\n  wait {\n    min = "9s"\n  }\n}\n'
    )
    problems = convert(hcl, [], tmp_path / "out", tmp_path, {})
    assert [str(p) for p in problems] == [
        f"{hcl}:9: note: a template's own 'wait' is dropped: the sidecar has one [wait]."
    ]
    assert exit_code(problems) == 0
    assert tomllib.loads((tmp_path / "out" / "sidecar.toml").read_text())["wait"] == {
        "min": "1s",
        "max": "4s",
    }
    assert 'for instance in service("web")' in (tmp_path / "out" / "d.j2").read_text()


def test_a_template_reading_the_environment_gets_its_variables_allowed(tmp_path: Path) -> None:
    (tmp_path / "h.ctmpl").write_text('server {{ env "HOSTNAME" }}:80;{{ env "ZONE" | toLower }}\n')
    (tmp_path / "e.ctmpl").write_text('{{ env (key "name") }}\n')
    dest = tmp_path / "h.conf"
    problems = convert(
        None, [f"h.ctmpl:{dest}", f"e.ctmpl:{tmp_path}/e.conf"], tmp_path / "out", tmp_path, {}
    )
    assert [str(p) for p in problems] == [
        f'{tmp_path / "e.ctmpl"}:1: needs a hand: env takes one constant variable name, e.g. env "HOSTNAME".'
    ]
    tables = tomllib.loads((tmp_path / "out" / "sidecar.toml").read_text())["template"]
    assert [t.get("env") for t in tables] == [["HOSTNAME", "ZONE"], None]
    # `upstreams check` renders with the variables allowed; without them it failed on env().
    check = subprocess.run([UPSTREAMS, "check", "--config", str(tmp_path / "out" / "sidecar.toml")],
                           capture_output=True, text=True, timeout=30, env={**os.environ, "HOSTNAME": "web-1"})  # fmt: skip
    assert check.returncode == 0, check.stderr
