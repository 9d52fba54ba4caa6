"""`upstreams convert` end to end: consul-template templates and configs written for the suite are
converted, rendered by the real sidecar against a real Consul, and give the nginx statements the Go
templates mean (written out by hand below), which a real `nginx -t` accepts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.consul_agent import ConsulAgent
from tests.support.nginx import NGINX
from tests.support.sidecar import UPSTREAMS

CTMPL = Path(__file__).parent / "ctmpl"

# What consul-template renders from each template with the data registered by `catalog` below.
EXPECTED = {
    "seed": ["upstream primes {", "server 127.0.0.1:8080", "server 127.0.0.1:8080", "}"],
    "per_service": ["upstream api {", "server 127.0.0.2:8001", "server 127.0.0.2:8002", "}"],
    "tags_health": [
        "upstream blue {", "server 127.0.0.1:9001", "server 127.0.0.1:9003 backup", "}",
        "upstream all_prime {", "server 127.0.0.1:9001", "server 127.0.0.1:9002",
        "server 127.0.0.1:9003 down", "server 127.0.0.1:9004 down", "}",
        "upstream canary {", "server 127.0.0.2:8002", "}",
    ],
    "kv": [
        "upstream primes {", "server 127.0.0.1:9001 weight=5 max_fails=3",  # p2 is in maintenance (KV)
        "keepalive 32", "keepalive_requests 100", "}",
    ],
    "with_else": [
        "upstream api_first {", "server 127.0.0.2:8001", "}",
        "upstream two_apis {", "server 127.0.0.3:7001", "}",
    ],
    "trimmed": ["upstream trimmed {", "server 127.0.0.2:8001", "server 127.0.0.2:8002", "}"],
    "scratch": [
        "upstream from_scratch {", "server 127.0.0.1:9001", "server 127.0.0.1:9001", "server 127.0.0.1:9002", "}",
    ],
    "bytag": [
        "upstream tag_blue {", "server 127.0.0.1:9001 weight=2", "server 127.0.0.1:9003", "}",
        "upstream tag_v1 {", "server 127.0.0.1:9001 weight=2", "}",
        "upstream tag_v2 {", "server 127.0.0.1:9002 weight=2", "}",
    ],
}  # fmt: skip


def statements(text: str) -> list[str]:
    """nginx statements, whitespace-normalised and comments dropped: what a config means to nginx."""
    out, current = [], ""
    for ch in re.sub(r"#[^\n]*", "", text):
        if ch not in ";{}":
            current += ch
            continue
        stmt = " ".join(current.split())
        current = ""
        if ch == "{":
            out.append(f"{stmt} {{")
        elif stmt:
            out.append(stmt)
        if ch == "}":
            out.append("}")
    return out


def catalog(consul: ConsulAgent) -> None:
    ttl = consul.register_ttl
    ttl("prime", "p1", 9001, Tags=["v1", "blue"], Meta={"max_fails": "3"})
    ttl("prime", "p2", 9002, Tags=["v2"])
    ttl("prime", "p3", 9003, status="warning", Tags=["blue"])
    ttl("prime", "p4", 9004, status="critical")
    ttl("api", "a1", 8001, address="127.0.0.2", Tags=["public"])
    ttl("api", "a2", 8002, address="127.0.0.2", Tags=["public", "canary"])
    ttl("admin", "d1", 7001, address="127.0.0.3")
    for key, value in {
        "nginx/keepalive": "32",
        "upstreams/maintenance/p2": "true",
        "upstreams/prime/weights/p1": "5",
        "upstreams/config": json.dumps({"requests": 100}),
    }.items():
        put_key(consul, key, value)


def put_key(consul: ConsulAgent, key: str, value: str) -> None:
    """A KV value as raw bytes (``api()`` would send it JSON-encoded, quotes included)."""
    request = urllib.request.Request(f"{consul.address}/v1/kv/{key}", data=value.encode(), method="PUT")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.read().strip() == b"true"


def hcl_config(tmp: Path, consul: ConsulAgent) -> Path:
    blocks = "".join(
        f"""
template {{
  source      = "{CTMPL / name}.ctmpl"
  destination = "{tmp / "conf.d" / name}.conf"
  command     = "nginx -t && systemctl reload nginx"
  perms       = 0640
  backup      = true
}}
"""
        for name in EXPECTED
    )
    path = tmp / "consul-template.hcl"
    path.write_text(
        f"""# written for the suite, as a consul-template user would
consul {{
  address = "{consul.address.removeprefix("http://")}"
  retry {{
    enabled = true
  }}
}}
max_stale = "10m"
log_level = "warn"
wait {{
  min = "0s"
  max = "0s"
}}
{blocks}"""
    )
    return path


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [UPSTREAMS, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def split_dry(output: str) -> dict[str, str]:
    parts = re.split(r"^# --- (.*) ---\n", output, flags=re.M)
    return {Path(parts[i]).stem: parts[i + 1] for i in range(1, len(parts), 2)}


def nginx_accepts(tmp: Path, text: str) -> None:
    (tmp / "rendered.conf").write_text(text)
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"pid {tmp}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{ access_log off; include {tmp}/rendered.conf; }}\n"
    )
    result = subprocess.run(
        [NGINX, "-t", "-q", "-p", str(tmp), "-c", str(conf)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def rendered(
    consul_agent: ConsulAgent, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, object]]:
    """Convert the suite's HCL config once, render it once against the catalog; shared by the tests."""
    tmp = tmp_path_factory.mktemp("convert")
    (tmp / "conf.d").mkdir()
    consul_agent.clear()
    catalog(consul_agent)
    config = hcl_config(tmp, consul_agent)
    converted = run("convert", str(config), "--output", str(tmp / "out"))
    dry = run("render", "--dry", "--config", str(tmp / "out" / "sidecar.toml"))
    yield {"tmp": tmp, "convert": converted, "dry": dry, "texts": split_dry(dry.stdout)}
    consul_agent.clear()


@pytest.mark.slow
def test_hcl_config_converts_completely_and_passes_check(rendered: dict[str, object]) -> None:
    converted, tmp = rendered["convert"], rendered["tmp"]
    assert isinstance(converted, subprocess.CompletedProcess) and isinstance(tmp, Path)
    assert converted.returncode == 0, converted.stderr
    # Dropped settings are notes with the line they come from, not parts that need a hand.
    assert f"{tmp / 'consul-template.hcl'}:9: note: 'log_level' is dropped" in converted.stderr
    assert "needs a hand" not in converted.stderr
    toml = (tmp / "out" / "sidecar.toml").read_text()
    assert 'reload_command = ["systemctl", "reload", "nginx"]' in toml
    assert 'max_stale = "10m"' in toml  # stale reads keep consul-template's meaning
    assert 'perms = "0640"' in toml and "backup = true" in toml
    check = run("check", "--config", str(tmp / "out" / "sidecar.toml"))
    assert check.returncode == 0, check.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_converted_template_renders_what_the_go_template_means(
    rendered: dict[str, object], name: str
) -> None:
    dry, texts, tmp = rendered["dry"], rendered["texts"], rendered["tmp"]
    assert isinstance(dry, subprocess.CompletedProcess) and isinstance(texts, dict) and isinstance(tmp, Path)
    assert dry.returncode == 0, dry.stderr
    assert name in texts, dry.stderr
    assert statements(texts[name]) == EXPECTED[name]
    nginx_accepts(tmp, texts[name])


@pytest.mark.slow
def test_trimming_gives_exactly_go_s_whitespace(rendered: dict[str, object]) -> None:
    texts = rendered["texts"]
    assert isinstance(texts, dict)
    assert texts["trimmed"] == "upstream trimmed {server 127.0.0.2:8001;server 127.0.0.2:8002;}\n"
    assert texts["seed"] == (
        "upstream primes {\n    \n    server 127.0.0.1:8080;\n    server 127.0.0.1:8080;\n}\n"
    )


@pytest.mark.slow
def test_command_line_form_converts_the_classic_unit(tmp_path: Path, consul: ConsulAgent) -> None:
    consul.register_ttl("prime", "p1", 9001)
    shutil.copy(CTMPL / "seed.ctmpl", tmp_path / "prime.ctmpl")
    spec = f"prime.ctmpl:{tmp_path}/prime.conf:systemctl kill -s SIGHUP nginx"
    converted = subprocess.run(
        [UPSTREAMS, "convert", "--template", spec, "--output", "out"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert converted.returncode == 0, converted.stderr
    toml = (tmp_path / "out" / "sidecar.toml").read_text()
    assert 'reload_command = ["systemctl", "kill", "-s", "SIGHUP", "nginx"]' in toml
    assert f'destination = "{tmp_path}/prime.conf"' in toml
    dry = run("render", "--dry", "--config", str(tmp_path / "out" / "sidecar.toml"),
              env={"CONSUL_HTTP_ADDR": consul.address})  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert statements(dry.stdout) == ["upstream primes {", "server 127.0.0.1:8080", "}"]
