"""Observability: /health, /metrics, /status, `upstreams status`, JSON logs, systemd readiness."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.renderer.conftest import register_backend
from tests.support.consul_agent import ConsulAgent
from tests.support.http import get
from tests.support.nginx import NginxServer
from tests.support.ports import free_port
from tests.support.sidecar import UPSTREAMS, SidecarProcess, write_config
from tests.support.waiting import wait_until


def test_health_metrics_and_status_tell_the_operator_what_state_the_sidecar_is_in(
    tmp_path: Path,
    private_consul: ConsulAgent,
    nginx: NginxServer,
    start_sidecar: Callable[..., SidecarProcess],
) -> None:
    consul = private_consul
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    register_backend(consul, nginx, "b1")
    register_backend(consul, nginx, "b2", status="warning")
    config = write_config(tmp_path, consul, nginx, status=f"127.0.0.1:{port}")
    start_sidecar(config)
    wait_until(lambda: get(f"{base}/health")[0] == 200, what="healthy after the first apply")
    assert json.loads(get(f"{base}/health")[1])["status"] == "ok"

    code, metrics = get(f"{base}/metrics")
    assert code == 200
    for name in (
        "upstreams_renders_total",
        "upstreams_nginx_reloads_total 1.0",
        "upstreams_watched_services 1.0",
        "upstreams_consul_fetch_seconds_bucket",
        "upstreams_nginx_check_failures_total 0.0",
        "upstreams_consul_up 1.0",
        "upstreams_ready 1.0",
    ):
        assert name in metrics, name

    status = json.loads(get(f"{base}/status")[1])
    assert {i["id"]: i["status"] for i in status["services"]["prime"]} == {"b1": "passing", "b2": "warning"}
    table = subprocess.run(
        [UPSTREAMS, "status", "--config", str(config)], capture_output=True, text=True, timeout=10
    )
    assert table.returncode == 0, table.stderr
    assert "b1" in table.stdout and "WARN" in table.stdout and "healthy" in table.stdout

    consul.kill()
    wait_until(lambda: get(f"{base}/health")[0] == 503, what="unhealthy without Consul")
    reason = json.loads(get(f"{base}/health")[1])["reason"]
    assert "Consul is unreachable" in reason
    assert "upstreams_consul_up 0.0" in get(f"{base}/metrics")[1]
    down = subprocess.run(
        [UPSTREAMS, "status", "--config", str(config)], capture_output=True, text=True, timeout=10
    )
    assert down.returncode == 1 and "UNHEALTHY" in down.stdout


def test_status_command_without_a_running_sidecar_is_one_clear_line(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer
) -> None:
    config = write_config(tmp_path, consul, nginx, status=f"127.0.0.1:{free_port()}")
    out = subprocess.run(
        [UPSTREAMS, "status", "--config", str(config)], capture_output=True, text=True, timeout=10
    )
    assert out.returncode == 1
    assert "No sidecar answers at http://127.0.0.1:" in out.stderr and len(out.stderr.splitlines()) == 1


def test_status_port_in_use_is_a_clear_start_up_error(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_config(tmp_path, consul, nginx, status=f"127.0.0.1:{port}")
        out = subprocess.run(
            [UPSTREAMS, "watch", "--config", str(config)], capture_output=True, text=True, timeout=20
        )
    assert out.returncode == 2  # a config value that cannot be used: a usage error
    assert f"Cannot serve the status endpoint on 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr


def test_json_logs_are_one_object_per_line(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(consul, nginx, "b1")
    sidecar = start_sidecar(write_config(tmp_path, consul, nginx), "--log-format", "json")
    wait_until(lambda: "nginx reloaded" in sidecar.output(), what="a reload logged")
    sidecar.stop()
    records = [json.loads(line) for line in sidecar.output().splitlines() if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["message"] == "Service prime changed: 1 instances, 1 passing." for r in records)


def test_readiness_is_notified_to_systemd_after_the_first_apply(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, start_sidecar: Callable[..., SidecarProcess]
) -> None:
    register_backend(consul, nginx, "b1")
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(20)
        start_sidecar(write_config(tmp_path, consul, nginx), env={"NOTIFY_SOCKET": str(path)})
        message = sock.recv(4096).decode()
    assert message.startswith("READY=1")
    # READY follows the reload signal; nginx's old workers may answer for a few more milliseconds.
    wait_until(lambda: nginx.answers() == {"b1"}, timeout=5, what="the first render live")
