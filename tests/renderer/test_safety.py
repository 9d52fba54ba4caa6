"""End to end: nothing bad reaches a live nginx, and the daemon survives every failure."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.renderer.conftest import register_backend
from tests.support.consul_agent import ConsulAgent
from tests.support.nginx import NginxServer
from tests.support.sidecar import TEMPLATE, UPSTREAMS, SidecarProcess, write_config
from tests.support.waiting import wait_until

BREAKS_NGINX_AT_THREE = """{% import "nginx.j2" as nginx %}
{{ nginx.upstream("primes", service("prime")) }}
{% if service("prime") | length >= 3 %}
this_is_not_an_nginx_directive on;
{% endif %}
"""


def test_failing_nginx_check_restores_the_previous_files_and_nginx_keeps_serving(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    for name in ("b1", "b2"):
        register_backend(consul, nginx, name)
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx, template=BREAKS_NGINX_AT_THREE))
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="two backends serving")
    dest = nginx.conf_d / "upstreams.conf"
    good = dest.read_bytes()
    reloads = nginx.reloads()

    register_backend(consul, nginx, "b3")  # the template now renders something nginx -t refuses
    wait_until(lambda: "nginx rejected the new config" in sidecar.output(), what="the refused check logged")
    assert dest.read_bytes() == good
    assert nginx.reloads() == reloads
    assert nginx.answers() == {"b1", "b2"}
    assert "unknown directive" in sidecar.output()
    assert "upstreams render --dry` prints that render" in sidecar.output()
    assert not [p for p in dest.parent.iterdir() if p.name.endswith(".tmp")]

    consul.deregister("b3")
    consul.set_ttl("b2", "critical")  # the next valid change applies
    wait_until(lambda: nginx.answers() == {"b1"}, what="the next valid change applied")
    assert sidecar.proc.poll() is None


def test_broken_template_edit_changes_nothing_and_a_fix_applies(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(consul, nginx, "b1")
    config = write_config(tmp_path, consul, nginx)
    sidecar = start_sidecar(config)
    wait_until(lambda: nginx.answers() == {"b1"}, what="b1 serving")
    dest = nginx.conf_d / "upstreams.conf"
    good = dest.read_bytes()

    source = tmp_path / "upstreams.conf.j2"
    source.write_text("{% for x in service('prime') %}\n{{ x.address }\n")  # syntax error
    wait_until(lambda: "Template not reloaded" in sidecar.output(), what="the broken template reported")
    assert f"{source}:" in sidecar.output()
    register_backend(consul, nginx, "b2")  # data changes still render with the last good template
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="b2 joined under the last good template")
    assert dest.read_bytes() != good

    source.write_text(
        '{% import "nginx.j2" as nginx %}\n{{ nginx.upstream("primes", service("prime")[:1]) }}\n'
    )
    wait_until(lambda: nginx.answers() == {"b1"}, what="the fixed template applied on save")


def test_sighup_rereads_config_and_templates(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(consul, nginx, "b1")
    register_backend(consul, nginx, "b2", status="warning")
    config = write_config(tmp_path, consul, nginx)
    sidecar = start_sidecar(config)
    wait_until(lambda: nginx.answers() == {"b1"}, what="b1 serving, b2 as backup")
    # A new template file, named by the config: only SIGHUP can make the sidecar see it.
    (tmp_path / "all.j2").write_text(
        '{% import "nginx.j2" as nginx %}\n{{ nginx.upstream("primes", service("prime", passing=false)) }}\n'
    )
    config.write_text(config.read_text().replace('source = "upstreams.conf.j2"', 'source = "all.j2"'))
    sidecar.signal(signal.SIGHUP)
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="the new template applied after SIGHUP")
    assert "Config reloaded" in sidecar.output()

    config.write_text("this is = not [valid toml")
    sidecar.signal(signal.SIGHUP)
    wait_until(lambda: "Config not reloaded" in sidecar.output(), what="the bad config refused")
    consul.set_ttl("b1", "critical")
    wait_until(lambda: nginx.answers() == {"b2"}, what="still following Consul with the old config")


def test_sigterm_stops_promptly_and_cleanly(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(consul, nginx, "b1")
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx))
    wait_until(lambda: nginx.answers() == {"b1"}, what="b1 serving")
    started = time.monotonic()
    assert sidecar.stop(timeout=5) == 0, sidecar.output()
    assert time.monotonic() - started < 5
    assert "Stopped." in sidecar.output()
    assert "Traceback" not in sidecar.output()


def test_consul_stopped_and_restarted_keeps_config_then_applies_new_changes(
    tmp_path: Path,
    private_consul: ConsulAgent,
    nginx: NginxServer,
    start_sidecar: Callable[..., SidecarProcess],
) -> None:
    consul = private_consul
    for name in ("b1", "b2"):
        register_backend(consul, nginx, name)
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx))
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="two backends serving")
    dest = nginx.conf_d / "upstreams.conf"
    good = dest.read_bytes()

    consul.kill()
    wait_until(lambda: "Lost Consul" in sidecar.output(), what="the loss of Consul logged")
    assert dest.read_bytes() == good
    assert nginx.answers() == {"b1", "b2"}
    assert sidecar.proc.poll() is None

    consul.start()  # a dev agent starts empty: the instances are registered anew, b2 without health
    register_backend(consul, nginx, "b1")
    register_backend(consul, nginx, "b3")
    wait_until(lambda: nginx.answers() == {"b1", "b3"}, what="the new catalog applied after the restart")
    assert sidecar.proc.poll() is None


def test_consul_down_at_start_renders_nothing_until_it_comes(
    tmp_path: Path,
    private_consul: ConsulAgent,
    nginx: NginxServer,
    start_sidecar: Callable[..., SidecarProcess],
) -> None:
    consul = private_consul
    consul.stop()
    dest = nginx.conf_d / "upstreams.conf"
    before = dest.read_bytes()
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx))
    wait_until(lambda: "Lost Consul" in sidecar.output(), what="Consul unreachable logged")
    assert dest.read_bytes() == before
    consul.start()
    register_backend(consul, nginx, "b4")
    wait_until(lambda: nginx.answers() == {"b4"}, timeout=30, what="the first render once Consul came")


def test_nginx_not_running_at_reload_is_retried(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(consul, nginx, "b1")
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx))
    wait_until(lambda: nginx.answers() == {"b1"}, what="b1 serving")
    nginx.stop()
    register_backend(consul, nginx, "b2")
    wait_until(
        lambda: "checked files are in place" in sidecar.output(),  # a state (INFO), not an alarm
        what="the files waiting for nginx logged",
    )
    nginx.start()  # nginx starts with the new files (they passed the check)
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="the new upstream live")
    assert sidecar.proc.poll() is None


def test_render_dry_prints_and_touches_nothing(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer
) -> None:
    register_backend(consul, nginx, "b1")
    config = write_config(tmp_path, consul, nginx)
    dest = nginx.conf_d / "upstreams.conf"
    before = dest.read_bytes()
    out = subprocess.run(
        [UPSTREAMS, "render", "--dry", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert f"server 127.0.0.1:{nginx.backends['b1']};" in out.stdout
    assert dest.read_bytes() == before
    assert nginx.reloads() == 0


def test_render_once_applies_and_exits(tmp_path: Path, consul: ConsulAgent, nginx: NginxServer) -> None:
    register_backend(consul, nginx, "b2")
    config = write_config(tmp_path, consul, nginx)
    out = subprocess.run(
        [UPSTREAMS, "render", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    wait_until(lambda: nginx.answers() == {"b2"}, what="the rendered upstream live")
    assert nginx.reloads() == 1


BROKEN_INCLUDE = """{% import "nginx.j2" as nginx %}
{{ nginx.upstream("primes", service("prime")) }}
include /nonexistent/upstreams-extra.conf;
"""


@pytest.mark.parametrize(
    "template", [BREAKS_NGINX_AT_THREE, BROKEN_INCLUDE], ids=["unknown-directive", "broken-include"]
)
def test_render_once_fails_clearly_when_nginx_refuses(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, template: str
) -> None:
    for name in ("b1", "b2", "b3"):
        register_backend(consul, nginx, name)
    config = write_config(tmp_path, consul, nginx, template=template)
    before = (nginx.conf_d / "upstreams.conf").read_bytes()
    out = subprocess.run(
        [UPSTREAMS, "render", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 1
    assert out.stderr.count("nginx rejected the new config") == 1, out.stderr  # said once
    # The file nginx names is restored already: the message says its line numbers are the rejected render's.
    assert "Line numbers are those of the rejected render" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert (nginx.conf_d / "upstreams.conf").read_bytes() == before


def test_render_before_nginx_starts_leaves_checked_files_for_it(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer
) -> None:
    register_backend(consul, nginx, "b3")
    nginx.stop()
    nginx.pid_file.unlink(missing_ok=True)
    config = write_config(tmp_path, consul, nginx)
    out = subprocess.run(
        [UPSTREAMS, "render", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert "checked files are in place" in out.stderr
    nginx.start()  # as systemd would, after the render (ExecStartPre or ordering)
    wait_until(lambda: nginx.answers() == {"b3"}, what="nginx starting with the rendered upstream")


def test_other_files_beside_the_template_do_not_trigger_renders(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(consul, nginx, "b1")
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx), "--debug")  # its log is in the same folder
    wait_until(lambda: nginx.answers() == {"b1"}, what="b1 serving")
    edited = "Template files changed"
    (tmp_path / "notes.txt").write_text("not a template")
    time.sleep(1)
    assert edited not in sidecar.output()  # neither the note nor the sidecar's own log lines
    (tmp_path / "upstreams.conf.j2").write_text(TEMPLATE)  # positive control: a template save does
    wait_until(lambda: edited in sidecar.output(), what="the template save noticed")
