"""The command line: check without Consul, one clear line per problem, exit codes, no tracebacks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.sidecar import UPSTREAMS


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([UPSTREAMS, *args], capture_output=True, text=True, timeout=30)


def config(tmp_path: Path, template: str) -> Path:
    (tmp_path / "t.j2").write_text(template)
    path = tmp_path / "sidecar.toml"
    # Consul's address points nowhere: check must not need it.
    path.write_text(
        '[consul]\naddress = "127.0.0.1:1"\n[[template]]\nsource = "t.j2"\ndestination = "out.conf"\n'
    )
    return path


def test_check_accepts_a_valid_config_and_template(tmp_path: Path) -> None:
    path = config(tmp_path, '{% import "nginx.j2" as nginx %}{{ nginx.upstream("web", service("web")) }}')
    out = run("check", "--config", str(path))
    assert out.returncode == 0, out.stderr
    assert "valid" in out.stdout
    assert not (tmp_path / "out.conf").exists()


def test_check_reports_a_template_error_with_file_and_line(tmp_path: Path) -> None:
    path = config(tmp_path, "line one\n{{ servcie('web') }}\n")
    out = run("check", "--config", str(path))
    assert out.returncode == 2
    assert out.stderr.strip() == f"upstreams: {tmp_path / 't.j2'}:2: unknown function or variable 'servcie'."


def test_check_reports_sandbox_escapes(tmp_path: Path) -> None:
    out = run("check", "--config", str(config(tmp_path, "{{ ''.__class__.__mro__[1].__subclasses__() }}")))
    assert out.returncode == 2
    assert "refused by the sandbox" in out.stderr or "unsafe" in out.stderr
    assert "Traceback" not in out.stderr


def test_config_errors_are_one_sentence_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[wait]\nmin = 3\n")
    for command in ("check", "watch", "render"):
        out = run(command, "--config", str(path))
        assert out.returncode in (1, 2)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert str(path) in out.stderr and "Traceback" not in out.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[wait]\nmin = 3\n")
    out = run("--debug", "check", "--config", str(path))
    assert "Traceback" in out.stderr


def test_bad_flags_are_usage_errors() -> None:
    out = run("watch")
    assert out.returncode == 2 and "--config" in out.stderr
    assert run("frobnicate").returncode == 2


def test_render_gives_up_clearly_when_consul_never_answers(tmp_path: Path) -> None:
    path = config(tmp_path, "{{ service('web') | length }}")
    out = run("render", "--timeout", "1", "--config", str(path))
    assert out.returncode == 1
    assert "did not complete within 1s" in out.stderr and "127.0.0.1:1" in out.stderr
    # In its own words: it never reached Consul, so nothing was "lost", and no aiohttp internals.
    assert "Lost Consul" not in out.stderr and "ssl:default" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_demo_refuses_a_malformed_consul_address_at_once() -> None:
    out = run("demo", "--consul-address", "ftp://x:1", "--plain", "--duration", "1")
    assert out.returncode == 2
    assert "Consul address 'ftp://x:1' is not host:port" in out.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    ("nginx_table", "message"),
    [
        ('check_command = ["ngnix", "-t"]', "[nginx]: check_command's program 'ngnix' is not found on PATH."),
        (
            'reload_command = ["/nonexistent/systemctl", "reload", "nginx"]',
            "[nginx]: reload_command's program '/nonexistent/systemctl' is not an executable file.",
        ),
    ],
)
def test_check_reports_a_command_whose_program_cannot_be_found(
    tmp_path: Path, nginx_table: str, message: str
) -> None:
    path = config(tmp_path, "{{ service('web') | length }}")
    path.write_text(path.read_text() + f"[nginx]\n{nginx_table}\n")
    out = run("check", "--config", str(path))
    assert out.returncode == 2
    assert out.stderr.strip() == f"upstreams: {path} {message}"
    # the positive control: programs that are there pass
    path.write_text(path.read_text().replace("ngnix", "true").replace("/nonexistent/systemctl", "/bin/true"))
    assert run("check", "--config", str(path)).returncode == 0


def test_nginx_snippet_prints_the_http_directives_for_the_endpoint(tmp_path: Path) -> None:
    path = config(tmp_path, "x")
    path.write_text(path.read_text() + '[nginx]\ndynamic = true\ndynamic_endpoint = "127.0.0.3:9181"\n')
    out = run("nginx-snippet", "--config", str(path))
    assert out.returncode == 0, out.stderr
    assert "    listen 127.0.0.3:9181;" in out.stdout.splitlines()
    assert "lua_shared_dict upstreams 32m;" in out.stdout
    main = run("nginx-snippet", "--main", "--config", str(path))
    assert main.stdout.splitlines() == [
        "load_module /usr/lib/nginx/modules/ndk_http_module.so;",
        "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;",
    ]
    assert out.stderr == main.stderr == ""


def test_nginx_snippet_notes_when_dynamic_is_off(tmp_path: Path) -> None:
    out = run("nginx-snippet", "--config", str(config(tmp_path, "x")))
    assert out.returncode == 0 and "lua_shared_dict upstreams 32m;" in out.stdout
    assert "[nginx] dynamic off" in out.stderr and len(out.stderr.splitlines()) == 1


def test_nginx_snippet_refuses_a_bad_config_in_one_line(tmp_path: Path) -> None:
    path = config(tmp_path, "x")
    path.write_text(path.read_text() + '[nginx]\ndynamic_endpoint = "10.0.0.1:9180"\n')
    out = run("nginx-snippet", "--config", str(path))
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "loopback" in out.stderr
