"""End to end: an instance nginx rejects is left out, and failover goes on for everything else."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from plumbing.errors import NginxCheckFailed
from renderer.config import NginxConfig
from renderer.daemon import EXCLUSION_ROUNDS
from renderer.exclusion import CheckProblem, parse_check_error
from renderer.nginx import CommandNginx
from tests.renderer.conftest import register_backend
from tests.support.consul_agent import ConsulAgent
from tests.support.http import get
from tests.support.nginx import NGINX, NginxServer
from tests.support.ports import free_port
from tests.support.sidecar import UPSTREAMS, SidecarProcess, write_config
from tests.support.waiting import wait_until

# A reserved name that never resolves (RFC 6761): nginx -t refuses the server line written from it.
BAD_HOST = "no-such-host.invalid"


def register_bad(consul: ConsulAgent, sid: str = "bad") -> None:
    consul.register_ttl("prime", sid, 80, address=BAD_HOST)


def test_real_nginx_check_names_the_bad_line_even_after_warnings(tmp_path: Path) -> None:
    upstreams = tmp_path / "up.conf"
    upstreams.write_text(f"upstream a {{\n    server 127.0.0.1:81;\n    server {BAD_HOST}:80;\n}}\n")
    conf = tmp_path / "nginx.conf"
    duplicates = " ".join(f"text/x{n} html;" for n in range(3))  # three warnings come first
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  types {{ text/html html; {duplicates} }}\n  include {upstreams};\n}}\n"
    )
    check = (NGINX, "-t", "-q", "-p", str(tmp_path), "-c", str(conf))
    with pytest.raises(NginxCheckFailed) as refused:
        asyncio.run(CommandNginx(NginxConfig(check_command=check)).check())
    reason = f'host not found in upstream "{BAD_HOST}:80"'
    assert parse_check_error(str(refused.value)) == CheckProblem(upstreams, 3, reason)


@pytest.mark.slow
def test_a_bad_host_name_is_left_out_and_another_instances_flip_still_reaches_nginx(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    for name in ("b1", "b2", "b3"):
        register_backend(consul, nginx, name)
    register_bad(consul)
    config = write_config(tmp_path, consul, nginx, status=f"127.0.0.1:{port}")
    sidecar = start_sidecar(config)
    wait_until(lambda: nginx.answers() == {"b1", "b2", "b3"}, what="the good instances live")
    dest = nginx.conf_d / "upstreams.conf"
    assert BAD_HOST not in dest.read_text()
    status = json.loads(get(f"{base}/status")[1])
    (excluded,) = status["excluded"]
    assert (excluded["service"], excluded["id"], excluded["address"]) == ("prime", "bad", BAD_HOST)
    assert "host not found" in excluded["reason"]
    assert status["healthy"] is True
    assert "upstreams_excluded_instances 1.0" in get(f"{base}/metrics")[1]
    table = subprocess.run(
        [UPSTREAMS, "status", "--config", str(config)], capture_output=True, text=True, timeout=10
    )
    assert f"left out: prime bad ({BAD_HOST}:80): host not found" in table.stdout, table.stdout
    warning = [line for line in sidecar.output().splitlines() if "Left out instance bad" in line]
    assert len(warning) == 1 and "WARNING" in warning[0] and "prime" in warning[0], warning
    assert "host not found in upstream" in warning[0]

    consul.set_ttl("b1", "critical")  # the bad registration stays; the flip must still reach nginx
    wait_until(lambda: nginx.answers() == {"b2", "b3"}, what="b1's failover applied")
    assert f":{nginx.backends['b1']};" not in dest.read_text()
    assert sidecar.output().count("Left out instance bad") == 1  # once, not on every round
    assert "Kept the last good files" not in sidecar.output()

    sidecar.signal(signal.SIGHUP)  # after a DNS fix: SIGHUP tries every left-out instance again
    wait_until(lambda: sidecar.output().count("Left out instance bad") == 2, what="bad tried again")
    assert "Rendering the 1 instance(s) left out again." in sidecar.output()
    assert nginx.answers() == {"b2", "b3"}

    consul.register_ttl("prime", "bad", nginx.backends["b4"])  # fixed: it comes back at once
    wait_until(lambda: nginx.answers() == {"b2", "b3", "b4"}, what="the changed instance back")
    assert json.loads(get(f"{base}/status")[1])["excluded"] == []
    assert "upstreams_excluded_instances 0.0" in get(f"{base}/metrics")[1]


@pytest.mark.slow
def test_render_once_applies_the_good_rest_and_names_the_instance_left_out(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer
) -> None:
    register_backend(consul, nginx, "b1")
    register_backend(consul, nginx, "b2")
    register_bad(consul, "bad-one")
    register_bad(consul, "bad-two")  # same line twice: both left out, over bounded retry rounds
    config = write_config(tmp_path, consul, nginx)
    out = subprocess.run(
        [UPSTREAMS, "render", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert "Left out instance bad-one of service prime" in out.stderr
    assert "Left out instance bad-two of service prime" in out.stderr
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="the good rest live")
    assert nginx.reloads() == 1


@pytest.mark.slow
def test_render_once_leaves_out_a_bounded_number_then_keeps_the_last_good_files(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer
) -> None:
    register_backend(consul, nginx, "b1")
    for n in range(EXCLUSION_ROUNDS + 1):  # one more bad instance than the rounds allow
        consul.register_ttl("prime", f"bad-{n:02}", 80 + n, address=BAD_HOST)
    config = write_config(tmp_path, consul, nginx)
    dest = nginx.conf_d / "upstreams.conf"
    before = dest.read_bytes()
    out = subprocess.run(
        [UPSTREAMS, "render", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1, out.stderr
    assert out.stderr.count("Left out instance bad-") == EXCLUSION_ROUNDS
    assert "Kept the last good files" in out.stderr
    assert dest.read_bytes() == before
    assert nginx.reloads() == 0
