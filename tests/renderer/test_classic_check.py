"""Classic mode: a change of IP-literal server lines alone reloads nginx without `nginx -t`; structural
changes and first renders are checked; ``[nginx] check = "always"`` checks before every reload."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.renderer.conftest import register_backend
from tests.support.consul_agent import ConsulAgent
from tests.support.nginx import NginxServer
from tests.support.sidecar import SidecarProcess, write_config
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def counting_config(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, check: str | None
) -> tuple[Path, Path]:
    """A config whose check command is nginx -t behind a script that counts its runs."""
    runs = tmp_path / "checks"
    script = tmp_path / "check.sh"
    script.write_text(
        f"#!/bin/sh\necho run >> {shlex.quote(str(runs))}\nexec {shlex.join(nginx.check_command)}\n"
    )
    script.chmod(0o755)
    config = write_config(tmp_path, consul, nginx)
    text = re.sub(r"^check_command = .*$", f'check_command = ["{script}"]', config.read_text(), flags=re.M)
    if check is not None:
        text = text.replace("[nginx]\n", f'[nginx]\ncheck = "{check}"\n', 1)
    config.write_text(text)
    return config, runs


def checks(runs: Path) -> int:
    return len(runs.read_text().splitlines()) if runs.exists() else 0


@pytest.mark.parametrize(("check", "per_flip"), [(None, 0), ("structural", 0), ("always", 1)])
def test_a_server_only_change_skips_the_check_unless_always(
    tmp_path: Path,
    consul: ConsulAgent,
    nginx: NginxServer,
    start_sidecar: Callable[..., SidecarProcess],
    check: str | None,
    per_flip: int,
) -> None:
    register_backend(consul, nginx, "b1")
    register_backend(consul, nginx, "b2")
    config, runs = counting_config(tmp_path, consul, nginx, check)
    assert "check.sh" in config.read_text()
    sidecar = start_sidecar(config)
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="the first render live")
    assert checks(runs) == 1  # a first render is always checked
    reloads = nginx.reloads()
    consul.set_ttl("b2", "critical")
    wait_until(lambda: nginx.answers() == {"b1"}, what="b2 out of rotation")
    consul.set_ttl("b2", "passing")
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="b2 back")
    assert nginx.reloads() == reloads + 2
    assert checks(runs) == 1 + 2 * per_flip
    if per_flip == 0:
        assert sidecar.output().count("server lines only, no check needed") == 2
    # A structural change (a template edit) is checked whatever the policy.
    (tmp_path / "upstreams.conf.j2").write_text((tmp_path / "upstreams.conf.j2").read_text() + "# edited\n")
    wait_until(lambda: "# edited" in nginx.upstreams.read_text(), what="the edit rendered")
    wait_until(lambda: checks(runs) == 2 + 2 * per_flip, what="the edit checked")


def test_a_host_name_server_is_checked(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(consul, nginx, "b1")
    config, runs = counting_config(tmp_path, consul, nginx, None)
    sidecar = start_sidecar(config)
    wait_until(lambda: nginx.answers() == {"b1"}, what="the first render live")
    # nginx resolves host names when it loads a config: only its check can say whether this one will load.
    consul.register_ttl("prime", "named", nginx.backends["b2"], address="localhost")
    wait_until(lambda: checks(runs) == 2, what="the host name checked")
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="localhost:b2 in rotation")
    assert "no check needed" not in sidecar.output()
