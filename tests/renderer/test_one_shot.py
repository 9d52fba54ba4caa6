"""One-shot commands tell the truth in their exit code (issue 14, section 5; the table in docs/configuration.md).

0 done; 1 a template not rendered or applied, or Consul silent until --timeout; 2 bad usage, config or template;
3 Consul refused the ACL token.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from healthchecks import cli as registrar_cli
from renderer import cli
from tests.renderer.conftest import register_backend
from tests.renderer.test_security import with_token_file
from tests.support.acl import token_with
from tests.support.consul_agent import ConsulAgent
from tests.support.http import get
from tests.support.nginx import NginxServer
from tests.support.ports import free_port
from tests.support.sidecar import UPSTREAMS, SidecarProcess, write_config
from tests.support.waiting import wait_until

DOCS = Path(__file__).parents[2] / "docs" / "configuration.md"

# Each fails only with data, so `upstreams check` (an empty catalog) passes them and `render` must tell.
REFUSED = {
    "sandbox": '{{ service("prime")[0].__class__.__mro__ }}\n',
    "range-too-large": '{% for _ in range((service("prime") | length) * 1000000) %}x{% endfor %}\n',
    "unknown-variable": '{% for i in service("prime") %}{{ i.nmae }}{% endfor %}\n',
}


def render(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [UPSTREAMS, "render", "--config", str(config), *args], capture_output=True, text=True, timeout=60
    )


def with_refused_template(tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, template: str) -> Path:
    """The usual template (upstream primes) and a second one that cannot be rendered."""
    bad = tmp_path / "bad.j2"
    bad.write_text(template)
    extra = f'\n[[template]]\nsource = "bad.j2"\ndestination = "{nginx.conf_d / "bad.conf"}"\n'
    return write_config(tmp_path, consul, nginx, extra=extra)


@pytest.mark.slow
@pytest.mark.parametrize("template", REFUSED.values(), ids=REFUSED.keys())
def test_render_exits_1_naming_the_template_it_could_not_render_once(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, template: str
) -> None:
    register_backend(consul, nginx, "b1")
    config = with_refused_template(tmp_path, consul, nginx, template)
    out = render(config)
    assert out.returncode == 1, out.stderr
    assert out.stderr.count(str(tmp_path / "bad.j2")) == 1, out.stderr
    assert "upstreams: Template not rendered" in out.stderr and "Traceback" not in out.stderr
    # The other template was applied all the same; the refused one wrote nothing.
    wait_until(lambda: nginx.answers() == {"b1"}, what="the good template applied")
    assert not (nginx.conf_d / "bad.conf").exists()


@pytest.mark.slow
def test_render_dry_prints_what_rendered_and_exits_1_for_what_did_not(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer
) -> None:
    register_backend(consul, nginx, "b1")
    config = with_refused_template(tmp_path, consul, nginx, REFUSED["sandbox"])
    before = (nginx.conf_d / "upstreams.conf").read_bytes()
    out = render(config, "--dry")
    assert out.returncode == 1, out.stderr
    assert f"127.0.0.1:{nginx.backends['b1']}" in out.stdout
    assert out.stderr.count(str(tmp_path / "bad.j2")) == 1, out.stderr
    assert (nginx.conf_d / "upstreams.conf").read_bytes() == before
    # positive control: without the refused template, --dry is a success
    assert render(write_config(tmp_path, consul, nginx), "--dry").returncode == 0


@pytest.mark.parametrize("timeout", ["1", "1s", "1000ms"])
def test_render_timeout_takes_durations_and_plain_seconds(tmp_path: Path, timeout: str) -> None:
    (tmp_path / "t.j2").write_text("{{ service('web') | length }}")
    config = tmp_path / "sidecar.toml"
    config.write_text('[consul]\naddress = "127.0.0.1:1"\n[[template]]\nsource = "t.j2"\ndestination = "o"\n')
    out = render(config, "--timeout", timeout)
    assert out.returncode == 1
    assert "render did not complete within 1s" in out.stderr


@pytest.mark.parametrize("timeout", ["soon", "0s", "-1", "inf"])
def test_a_malformed_timeout_is_a_usage_error(tmp_path: Path, timeout: str) -> None:
    out = render(tmp_path / "unused.toml", f"--timeout={timeout}")
    assert out.returncode == 2
    assert f"argument --timeout: '{timeout}' is not a duration such as '30s', '1m' or 45" in out.stderr


@pytest.mark.slow
def test_render_with_a_token_consul_refuses_exits_3_at_once(
    tmp_path: Path, acl_consul: ConsulAgent, nginx: NginxServer
) -> None:
    register_backend(acl_consul, nginx, "b1")
    config = write_config(tmp_path, acl_consul, nginx)
    before = (nginx.conf_d / "upstreams.conf").read_bytes()
    tokens = {
        "0b5e7c9a-1111-4222-8333-444455556666": "Consul does not accept the configured ACL token (",
        token_with(acl_consul, "kv-only", 'key_prefix "" { policy = "read" }'): "can read no service at all",
    }
    for secret, sentence in tokens.items():
        with_token_file(config, secret)
        out = render(config, "--timeout", "30s")  # "at once": long before the timeout
        assert out.returncode == 3, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        line = lines[0]
        assert line.startswith("upstreams: ") and sentence in line
        assert secret not in out.stderr
        assert (nginx.conf_d / "upstreams.conf").read_bytes() == before
        config.write_text(config.read_text().replace('token_file = "token"\n', ""))


@pytest.mark.slow
def test_watch_keeps_retrying_a_refused_token_and_health_and_status_say_why(
    tmp_path: Path, acl_consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(acl_consul, nginx, "b1")
    listen = f"127.0.0.1:{free_port()}"
    config = write_config(tmp_path, acl_consul, nginx, status=listen)
    with_token_file(config, "0b5e7c9a-1111-4222-8333-444455556666")
    sidecar = start_sidecar(config)
    sentence = "Consul does not accept the configured ACL token"

    def health() -> tuple[int, str] | None:
        code, body = get(f"http://{listen}/health")
        return (code, json.loads(body)["reason"]) if code and sentence in body else None

    code, _ = wait_until(health, what="/health naming the refused token")
    assert code == 503
    status = subprocess.run(
        [UPSTREAMS, "status", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert status.returncode == 1
    assert f"UNHEALTHY: {sentence}" in status.stdout
    assert sidecar.proc.poll() is None  # unlike `render`, watch does not give up on the token
    # said once, then rechecked quietly
    assert sidecar.output().count("Not rendering: Consul does not accept") == 1


def test_the_exit_code_table_documents_every_code_both_commands_use() -> None:
    table = DOCS.read_text().split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = [int(code) for code in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)]
    used = {cli.EXIT_OK, cli.EXIT_ERROR, cli.EXIT_USAGE, cli.EXIT_DENIED}
    used |= {registrar_cli.EXIT_OK, registrar_cli.EXIT_ERROR, registrar_cli.EXIT_USAGE}
    assert documented == sorted(used) == [0, 1, 2, 3]
