"""Offline checks of nix/: every .nix file parses, and the builtins-only parts evaluate to what we expect.

Nothing here can fetch nixpkgs, so the package, modules and VM test are only parsed; the logic that
matters (pins, the generated TOML and service files, the nginx check script, the sandbox test plugin) is
in files that need no nixpkgs and is evaluated or run for real. Debian's nix-bin provides nix-instantiate
(.ci/setup installs it); without it these tests fail rather than skip. ``NIX_REMOTE=dummy://`` keeps nix
from creating /nix/store.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from healthchecks.config import load_config as load_registrar_config
from healthchecks.files import load_service_file
from renderer.config import load_config as load_sidecar_config

ROOT = Path(__file__).resolve().parent.parent
NIX = ROOT / "nix"
SKIP_DIRS = {".git", ".venv", "node_modules", "result", ".direnv"}


def _nix_instantiate() -> str:
    path = shutil.which("nix-instantiate")
    if path is None:
        pytest.fail("nix-instantiate is not installed (Debian's nix-bin; .ci/setup installs it).")
    return path


def _env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "NIX_REMOTE": "dummy://",
        "HOME": str(tmp),
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "NIX_STATE_DIR": str(tmp / "state"),
    }


def _run_nix(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_nix_instantiate(), *args],
        cwd=ROOT,
        env=_env(tmp),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def nix_eval(expr: str, tmp: Path) -> Any:
    """Evaluate a Nix expression strictly, offline, and return it decoded from JSON."""
    proc = _run_nix(["--eval", "--strict", "--json", "--expr", expr], tmp)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def nix_eval_error(expr: str, tmp: Path) -> str:
    """Evaluate an expression that must fail; return its error output."""
    proc = _run_nix(["--eval", "--strict", "--json", "--expr", expr], tmp)
    assert proc.returncode != 0, f"evaluation succeeded: {proc.stdout}"
    return proc.stderr


def nix_string(value: Any) -> str:
    """A Python value written as a Nix expression (JSON is close enough, via builtins.fromJSON)."""
    return f"(builtins.fromJSON {json.dumps(json.dumps(value))})".replace("${", "\\${")


def _nix_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*.nix"):
        if not SKIP_DIRS.intersection(path.relative_to(ROOT).parts):
            files.append(path)
    return sorted(files)


# --- every file parses -------------------------------------------------------------------------------


def test_the_nix_files_we_ship_are_all_found() -> None:
    names = {str(p.relative_to(ROOT)) for p in _nix_files()}
    expected = {
        "shell.nix",
        "nix/default.nix",
        "nix/sources.nix",
        "nix/overlay.nix",
        "nix/package.nix",
        "nix/image.nix",
        "nix/artifact.nix",
        "nix/modules/sidecar.nix",
        "nix/modules/registrar.nix",
        "nix/tests/sidecar.nix",
        "nix/tests/cluster.nix",
        "nix/lib/pins.nix",
        "nix/lib/toml.nix",
        "nix/lib/sidecar-config.nix",
        "nix/lib/registrar-config.nix",
        "nix/lib/service-files.nix",
        "nix/lib/attrs.nix",
        "nix/lib/hardening.nix",
    }
    assert expected <= names


@pytest.mark.parametrize("path", _nix_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_nix_file_parses(path: Path, tmp_path: Path) -> None:
    proc = _run_nix(["--parse", str(path)], tmp_path)
    assert proc.returncode == 0, f"{path.relative_to(ROOT)} does not parse:\n{proc.stderr}"


def test_envrc_uses_the_nix_shell() -> None:
    assert (ROOT / ".envrc").read_text().split() == ["use", "nix"]


# --- pins --------------------------------------------------------------------------------------------


def test_pins_read_sources_json_into_fetch_arguments(tmp_path: Path) -> None:
    pins = nix_eval("import ./nix/lib/pins.nix { }", tmp_path)
    spec = json.loads((NIX / "sources.json").read_text())["nixpkgs"]
    assert pins == {"nixpkgs": {"name": "nixpkgs-src", "url": spec["url"], "sha256": spec["sha256"]}}


def test_nixpkgs_pin_is_a_release_branch_commit_with_a_sha256(tmp_path: Path) -> None:
    spec = json.loads((NIX / "sources.json").read_text())["nixpkgs"]
    assert spec["branch"].startswith("nixos-")
    assert spec["url"] == f"https://github.com/NixOS/nixpkgs/archive/{spec['rev']}.tar.gz"
    assert spec["sha256"].startswith("sha256-")
    assert len(base64.b64decode(spec["sha256"].removeprefix("sha256-"))) == 32


def test_sources_nix_lists_pins_without_fetching(tmp_path: Path) -> None:
    assert nix_eval("builtins.attrNames (import ./nix/sources.nix { })", tmp_path) == ["nixpkgs"]


def test_pins_reject_a_short_rev(tmp_path: Path) -> None:
    bad = tmp_path / "sources.json"
    bad.write_text(
        json.dumps({"x": {"type": "tarball", "rev": "abc123", "sha256": "0" * 52, "url": "https://h/abc123"}})
    )
    err = nix_eval_error(f"import ./nix/lib/pins.nix {{ sourcesFile = {bad}; }}", tmp_path)
    assert "pin 'x' needs a full 40-character commit as rev" in err


def test_pins_reject_a_url_that_does_not_name_the_rev(tmp_path: Path) -> None:
    bad = tmp_path / "sources.json"
    rev = "a" * 40
    bad.write_text(
        json.dumps({"x": {"type": "tarball", "rev": rev, "sha256": "0" * 52, "url": "https://h/main"}})
    )
    err = nix_eval_error(f"import ./nix/lib/pins.nix {{ sourcesFile = {bad}; }}", tmp_path)
    assert "has a url that does not name its rev" in err


# --- TOML writer -------------------------------------------------------------------------------------


def test_toml_writer_round_trips_awkward_strings(tmp_path: Path) -> None:
    value = {
        "a": {
            "quote": 'say "hi"',
            "backslash": "C:\\dir",
            "newline": "one\ntwo",
            "dollar": "${x}",
            "uni": "é€",
        },
        "n": 3,
        "yes": True,
        "list": ["x", "y"],
        "odd key": "v",
        "t": [{"k": 1}, {"k": 2}],
    }
    text = nix_eval(f"(import ./nix/lib/toml.nix).render {nix_string(value)}", tmp_path)
    assert tomllib.loads(text) == value


def test_toml_writer_leaves_out_null_keys(tmp_path: Path) -> None:
    text = nix_eval(
        '(import ./nix/lib/toml.nix).render { a = 1; b = null; t = { c = null; d = "x"; }; }', tmp_path
    )
    assert text == 'a = 1\n\n[t]\nd = "x"\n'


# --- sidecar config ----------------------------------------------------------------------------------

SIDECAR_ARGS = """{
  consul = { address = "http://127.0.0.1:8500"; tokenFile = "/run/credentials/upstreams.service/consul-token"; };
  wait = { min = "2s"; max = "10s"; };
  nginx = { reloadCommand = [ "/bin/request-reload" ]; checkCommand = [ "/bin/check" "/etc/nginx/nginx.conf" ]; };
  templates = [
    { source = "/store/web.conf.j2"; destination = "/run/upstreams/web.conf"; perms = "0644"; backup = false; }
    { source = "/store/api.conf.j2"; destination = "/run/upstreams/api.conf"; perms = null; backup = true; }
  ];
  extraSettings = { consul.max_connections = 4; };
}"""

SIDECAR_TOML = """\
[consul]
address = "http://127.0.0.1:8500"
max_connections = 4
token_file = "/run/credentials/upstreams.service/consul-token"

[nginx]
check_command = ["/bin/check", "/etc/nginx/nginx.conf"]
reload_command = ["/bin/request-reload"]

[wait]
max = "10s"
min = "2s"

[[template]]
backup = false
destination = "/run/upstreams/web.conf"
perms = "0644"
source = "/store/web.conf.j2"

[[template]]
backup = true
destination = "/run/upstreams/api.conf"
source = "/store/api.conf.j2"
"""


def test_sidecar_config_is_the_expected_toml(tmp_path: Path) -> None:
    text = nix_eval(f"(import ./nix/lib/sidecar-config.nix {SIDECAR_ARGS}).text", tmp_path)
    assert text == SIDECAR_TOML


def test_generated_sidecar_config_is_accepted_by_the_sidecar(tmp_path: Path) -> None:
    source = tmp_path / "web.conf.j2"
    source.write_text('{% import "nginx.j2" as nginx %}{{ nginx.upstream("web", service("web")) }}\n')
    token = tmp_path / "token"
    token.write_text("secret\n")
    out = tmp_path / "run"
    out.mkdir()
    args = {
        "consul": {"address": "http://127.0.0.1:8500", "tokenFile": str(token)},
        "wait": {"min": "500ms", "max": "5s"},
        "nginx": {"reloadCommand": ["true"], "checkCommand": ["nginx", "-t"]},
        "templates": [{"source": str(source), "destination": str(out / "web.conf"), "perms": "0640"}],
    }
    text = nix_eval(f"(import ./nix/lib/sidecar-config.nix {nix_string(args)}).text", tmp_path)
    path = tmp_path / "upstreams.toml"
    path.write_text(text)
    config = load_sidecar_config(path, {})
    assert config.consul.token == "secret"
    assert (config.wait.min, config.wait.max) == (0.5, 5.0)
    assert config.nginx.reload_command == ("true",)
    assert config.nginx.pid_file is None
    assert config.nginx.check_command == ("nginx", "-t")
    [template] = config.templates
    assert (template.source, template.destination, template.perms) == (source, out / "web.conf", 0o640)


def test_dynamic_options_become_the_nginx_keys_the_sidecar_reads(tmp_path: Path) -> None:
    source = tmp_path / "web.conf.j2"
    source.write_text('{% import "nginx.j2" as nginx %}{{ nginx.upstream("web", service("web")) }}\n')
    out = tmp_path / "run"
    out.mkdir()
    state = out / "upstreams-dynamic.json"
    dynamic = {"enable": True, "endpoint": "unix:/run/upstreams/nginx.sock", "stateFile": str(state)}
    args = {
        "nginx": {"reloadCommand": ["true"], "dynamic": dynamic},
        "templates": [{"source": str(source), "destination": str(out / "web.conf")}],
    }
    text = nix_eval(f"(import ./nix/lib/sidecar-config.nix {nix_string(args)}).text", tmp_path)
    path = tmp_path / "upstreams.toml"
    path.write_text(text)
    config = load_sidecar_config(path, {}).nginx.dynamic
    assert (config.enabled, config.where, config.state_file) == (
        True,
        "unix:/run/upstreams/nginx.sock",
        state,
    )
    off = {**args, "nginx": {"reloadCommand": ["true"], "dynamic": {"enable": False}}}
    text = nix_eval(f"(import ./nix/lib/sidecar-config.nix {nix_string(off)}).text", tmp_path)
    assert [line for line in text.splitlines() if line.startswith("dynamic")] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            '{ nginx = { reloadCommand = [ "x" ]; pidFile = "/run/nginx.pid"; }; templates = [ { source = "s"; destination = "d"; } ]; }',
            "give either nginx.reloadCommand or nginx.pidFile, not both",
        ),
        ("{ }", "templates is empty, so there is nothing to render"),
        (
            '{ templates = [ { source = "a"; destination = "/run/upstreams/x"; } { source = "b"; destination = "/run/upstreams/x"; } ]; }',
            "two templates have the same destination, /run/upstreams/x",
        ),
    ],
    ids=["reload-and-pid", "no-template", "same-destination"],
)
def test_sidecar_config_mistakes_fail_evaluation(args: str, message: str, tmp_path: Path) -> None:
    err = nix_eval_error(f"(import ./nix/lib/sidecar-config.nix {args}).text", tmp_path)
    assert f"services.upstreams: {message}" in err


# --- registrar config and service files --------------------------------------------------------------


def test_registrar_config_is_the_expected_toml(tmp_path: Path) -> None:
    args = """{
      consul = { address = "http://127.0.0.1:8500"; tokenFile = "/run/credentials/upstreams-registrar.service/consul-token"; };
      engine = "unix:///run/podman/podman.sock"; advertiseAddress = "192.168.1.2"; explicit = true;
      resync = "30s"; servicesDir = "/etc/upstreams-registrar/services.d"; deregisterOnStop = true;
    }"""
    text = nix_eval(f"(import ./nix/lib/registrar-config.nix {args}).text", tmp_path)
    assert text == (
        "[consul]\n"
        'address = "http://127.0.0.1:8500"\n'
        'token_file = "/run/credentials/upstreams-registrar.service/consul-token"\n'
        "\n"
        "[registrar]\n"
        'advertise_address = "192.168.1.2"\n'
        "containers = true\n"
        "deregister_on_stop = true\n"
        'engine = "unix:///run/podman/podman.sock"\n'
        "explicit = true\n"
        'resync = "30s"\n'
        'services_dir = "/etc/upstreams-registrar/services.d"\n'
    )


def test_generated_registrar_config_and_service_files_are_accepted_by_the_companion(tmp_path: Path) -> None:
    services = {
        "web": {
            "port": 8080,
            "tags": ["http"],
            "meta": {"team": "edge"},
            "checks": [
                {"http": "http://127.0.0.1:8080/health", "interval": "5s", "timeout": "2s"},
                {"script": ["/bin/true"], "interval": "30s"},
                {"shell": "test -e /run/ok", "deregister_after": "5m"},
            ],
        },
        "db": {"name": "postgres", "port": 5432, "address": "10.0.0.5", "checks": [{"tcp": "10.0.0.5:5432"}]},
    }
    files = nix_eval(f"import ./nix/lib/service-files.nix {nix_string(services)}", tmp_path)
    assert sorted(files) == ["db.json", "web.json"]
    services_dir = tmp_path / "services.d"
    services_dir.mkdir()
    for name, text in files.items():
        (services_dir / name).write_text(text)

    args = {
        "engine": None,
        "advertiseAddress": "192.168.1.2",
        "servicesDir": str(services_dir),
        "resync": "5s",
    }
    text = nix_eval(f"(import ./nix/lib/registrar-config.nix {nix_string(args)}).text", tmp_path)
    path = tmp_path / "registrar.toml"
    path.write_text(text)
    config = load_registrar_config(path, {})
    assert config.engine is None
    assert config.services_dir == services_dir
    assert config.resync == 5.0

    web = load_service_file(services_dir / "web.json", "host1", "192.168.1.2")
    assert (web.name, web.port, web.address, web.tags, web.meta) == (
        "web",
        8080,
        "192.168.1.2",
        ("http",),
        (("team", "edge"),),
    )
    assert [c.kind for c in web.checks] == ["http", "script", "script"]
    assert web.checks[0].target == "http://127.0.0.1:8080/health"
    assert web.checks[2].deregister_after == 300.0
    db = load_service_file(services_dir / "db.json", "host1", "192.168.1.2")
    assert (db.name, db.address, [c.kind for c in db.checks]) == ("postgres", "10.0.0.5", ["tcp"])


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ({"web": {"port": 80, "checks": [{"http": "http://x/", "tcp": "x:1"}]}}, "give exactly one of"),
        ({"web": {"port": 80, "checks": [{"interval": "5s"}]}}, "(got none)"),
        ({"web": {"port": 80, "checks": [{"script": "/bin/true"}]}}, "script is an argv list"),
        ({"web": {"port": 80, "checks": [{"http": "x"}]}}, "http must be an http:// or https:// URL"),
        ({"web": {"port": 80, "colour": "red"}}, "unknown key colour"),
        ({"web": {"name": "-bad", "port": 80}}, "is not a service name"),
        ({"web": {"port": 70000}}, "port must be a whole number"),
    ],
    ids=["two-kinds", "no-kind", "script-string", "http-url", "unknown-key", "bad-name", "bad-port"],
)
def test_service_file_mistakes_fail_evaluation(
    services: dict[str, Any], message: str, tmp_path: Path
) -> None:
    err = nix_eval_error(f"import ./nix/lib/service-files.nix {nix_string(services)}", tmp_path)
    assert "services.upstreams-registrar.services.web" in err
    assert message in err


def test_registrar_without_engine_or_services_fails_evaluation(tmp_path: Path) -> None:
    err = nix_eval_error("(import ./nix/lib/registrar-config.nix { }).text", tmp_path)
    assert "with no container engine (engine.type = null), declare at least one service in services" in err


def test_hardening_is_plain_service_config(tmp_path: Path) -> None:
    hardening = nix_eval("import ./nix/lib/hardening.nix", tmp_path)
    assert (hardening["CapabilityBoundingSet"], hardening["NoNewPrivileges"]) == ("", True)
    assert hardening["ProtectSystem"] == "strict"


# --- the package and the dev shell -------------------------------------------------------------------

# pyproject names (with extras) whose nixpkgs attributes differ: py-consul is `consul`, its asyncio extra
# is aiohttp.
NIXPKGS_NAMES = {"py-consul": ["consul"], "py-consul[asyncio]": ["consul", "aiohttp"]}


def _nix_list(path: Path, opening: str) -> set[str]:
    """The attribute names in the Nix list that starts with ``opening`` (comments dropped)."""
    text = path.read_text()
    body = text[text.index(opening) + len(opening) :].split("]", 1)[0]
    return {line.split("#", 1)[0].strip() for line in body.splitlines()} - {""}


def test_package_and_dev_shell_carry_every_runtime_dependency() -> None:
    wanted: set[str] = set()
    for spec in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?", spec)
        assert name is not None, spec
        wanted.update(NIXPKGS_NAMES.get(name.group(0), [name.group(0)]))
    assert wanted <= _nix_list(NIX / "package.nix", "dependencies = with python3Packages; [")
    assert wanted <= _nix_list(ROOT / "shell.nix", "ps: with ps; [")


# --- nginx check script ------------------------------------------------------------------------------


def _nginx() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if path is None:
        pytest.fail("nginx is not installed (.ci/setup installs it).")
    return path


def _nixos_like_config(tmp_path: Path, upstream: str) -> Path:
    """A config shaped like NixOS's: a pid file and log files the checking user could not open."""
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "types.conf").write_text("types { text/html html; }\n")
    (tmp_path / "web.conf").write_text(upstream)
    main = conf / "nginx.conf"
    main.write_text(
        "pid /nonexistent/run/nginx.pid;\n"
        "error_log /nonexistent/log/error.log warn;\n"
        "events { }\n"
        "http {\n"
        "  include types.conf;\n"
        "  access_log /nonexistent/log/access.log combined;\n"
        f"  include {tmp_path}/web.conf;\n"
        "  server { listen 127.0.0.1:1; location / { proxy_pass http://web; access_log /nonexistent/x.log; } }\n"
        "}\n"
    )
    return main


def _check(tmp_path: Path, main: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(NIX / "scripts/nginx-check.sh"), _nginx(), str(main)],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_nginx_check_accepts_a_good_render_despite_unopenable_pid_and_logs(tmp_path: Path) -> None:
    main = _nixos_like_config(tmp_path, "upstream web { server 127.0.0.1:8080; }\n")
    proc = _check(tmp_path, main)
    assert proc.returncode == 0, proc.stderr
    assert not list(tmp_path.glob("upstreams-nginx-check.*")), "the temporary copy was left behind"


def test_nginx_check_rejects_a_bad_render(tmp_path: Path) -> None:
    main = _nixos_like_config(tmp_path, "upstream web { server bogus:; }\n")
    proc = _check(tmp_path, main)
    assert proc.returncode != 0
    assert "invalid port in upstream" in proc.stderr


# --- the build sandbox's pytest plugin ---------------------------------------------------------------


def test_sandbox_plugin_deselects_tests_that_need_services(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "@pytest.fixture\n"
        "def consul_agent():\n"
        "    raise AssertionError('started a service')\n"
        "@pytest.fixture\n"
        "def consul(consul_agent):\n"
        "    return consul_agent\n"
        "def test_pure():\n"
        "    pass\n"
        "def test_with_consul(consul):\n"
        "    pass\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "pytest_offline",
            "-q",
            "-p",
            "no:cacheprovider",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(NIX)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 1 deselected" in proc.stdout
