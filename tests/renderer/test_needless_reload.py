"""No reload that changes nothing: nginx started after the files were written already runs them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from renderer.daemon import NGINX_START_MARGIN
from renderer.nginx import boot_clock, master_started_at
from tests.renderer.conftest import register_backend
from tests.support.consul_agent import ConsulAgent
from tests.support.http import get
from tests.support.nginx import NginxServer
from tests.support.ports import free_port
from tests.support.sidecar import SidecarProcess, write_config
from tests.support.waiting import wait_until

TICK = 0.01  # /proc start times count clock ticks (1/100 s)


def test_master_start_time_is_the_named_process_start_on_the_boot_clock(tmp_path: Path) -> None:
    before = boot_clock()
    proc = subprocess.Popen(["sleep", "30"])
    try:
        after = boot_clock()
        pid_file = tmp_path / "x.pid"
        pid_file.write_text(f"{proc.pid}\n")
        started = master_started_at(pid_file)
        assert started is not None
        assert before - TICK <= started <= after + TICK
    finally:
        proc.kill()
        proc.wait()
    assert master_started_at(pid_file) is None  # gone
    assert master_started_at(tmp_path / "missing.pid") is None
    (tmp_path / "empty.pid").write_text("")
    assert master_started_at(tmp_path / "empty.pid") is None


@pytest.mark.slow
def test_files_written_before_nginx_starts_cost_no_reload(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    nginx.stop()
    nginx.pid_file.unlink(missing_ok=True)
    register_backend(consul, nginx, "b1")
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx), "--debug")
    wait_until(lambda: "checked files are in place" in sidecar.output(), what="the render waiting for nginx")
    time.sleep(NGINX_START_MARGIN + 0.1)  # nginx starts clearly after the write, as systemd would start it
    nginx.start()
    wait_until(lambda: "runs them; no reload" in sidecar.output(), what="the needless reload skipped")
    assert nginx.answers() == {"b1"}
    assert nginx.reloads() == 0, sidecar.output()
    register_backend(consul, nginx, "b2")  # the next change still reloads
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="the next change live")
    assert nginx.reloads() == 1
    # nginx started after the sidecar is the recommended order: a state, not an alarm.
    assert "WARNING" not in sidecar.output() and "ERROR" not in sidecar.output(), sidecar.output()


@pytest.mark.slow
def test_nginx_started_late_is_reloaded_once_without_warnings_or_failure_counts(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    nginx.stop()
    nginx.pid_file.unlink(missing_ok=True)
    register_backend(consul, nginx, "b1")
    port = free_port()
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx, status=f"127.0.0.1:{port}"))
    wait_until(lambda: "checked files are in place" in sidecar.output(), what="the render waiting for nginx")
    time.sleep(2.0)  # several retries find no nginx
    nginx.start()
    register_backend(consul, nginx, "b2")  # changed after nginx read its files: one reload is needed
    wait_until(lambda: nginx.answers() == {"b1", "b2"}, what="the change live")
    out = sidecar.output()
    assert "WARNING" not in out and "ERROR" not in out, out
    assert "reload still failing" not in out
    assert out.count("nginx reloaded") == nginx.reloads() == 1, out  # one line for one reload
    metrics = get(f"http://127.0.0.1:{port}/metrics")[1]
    assert "upstreams_nginx_reload_failures_total 0.0" in metrics, metrics
