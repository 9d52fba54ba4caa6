"""The companion tells the operator its state: /health, /metrics, /status, JSON logs, systemd readiness;
and never shows its Consul token (logs, /proc/PID/cmdline)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from healthchecks.spec import CheckSpec, ServiceSpec
from healthchecks.state import RegistrarState
from plumbing.status import Health
from tests.healthchecks.conftest import REGISTRAR, Companion, owned
from tests.healthchecks.engines import EngineDaemon
from tests.support.acl import token_with
from tests.support.consul_agent import ConsulAgent
from tests.support.http import get
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def files_config(folder: Path, consul: ConsulAgent, *, consul_keys: str = "", status: str = "") -> Path:
    """A companion of service files only (no engine): one service with a TTL check."""
    services = folder / "services.d"
    services.mkdir()
    (services / "svc.toml").write_text('name = "svc"\nport = 80\n[[checks]]\nttl = "30s"\n')
    config = folder / "registrar.toml"
    config.write_text(
        f'[consul]\naddress = "{consul.address}"\n{consul_keys}\n[registrar]\nhostname = "obs"\n'
        f'containers = false\nservices_dir = "{services}"\n\n[status]\nlisten = "{status}"\n'
    )
    return config


def launch(config: Path, log: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONSUL_", "DOCKER_", "NOTIFY_"))}
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(REGISTRAR), "run", "--config", str(config), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**clean, **(env or {})},
        )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("engine_daemon", ["podman"], indirect=True)
def test_health_metrics_and_status_tell_the_operator_what_state_the_companion_is_in(
    tmp_path: Path, engine: EngineDaemon, private_consul: ConsulAgent
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    companion = Companion(tmp_path, private_consul, engine, listen=f"127.0.0.1:{port}")
    labels = {"SERVICE_NAME": "web", "SERVICE_CHECK_SCRIPT": "true", "SERVICE_CHECK_INTERVAL": "1s"}
    engine.run("obs", labels=labels, ports={"8080/tcp": None})
    sid = f"{companion.hostname}:obs:8080"
    try:
        companion.start()
        wait_until(lambda: get(f"{base}/health")[0] == 200, 20, what="healthy after the first reconcile")
        assert json.loads(get(f"{base}/health")[1]) == {"status": "ok", "reason": "", "services": 1}

        def check_status() -> str:
            services = json.loads(get(f"{base}/status")[1])["services"]
            return str(services.get(sid, {}).get("checks", {}).get(f"{sid}:script"))

        wait_until(lambda: check_status() == "passing", 10, what="the script check passing in /status")
        status = json.loads(get(f"{base}/status")[1])
        assert status["services"][sid]["name"] == "web" and status["engine"] == engine.url
        metrics = get(f"{base}/metrics")[1]
        for line in (
            "upstreams_registrations_total 1.0",
            "upstreams_deregistrations_total 0.0",
            "upstreams_reconcile_failures_total 0.0",
            "upstreams_engine_reconnects_total 0.0",
            'upstreams_check_results_total{status="passing"}',
            "upstreams_watched_containers 1.0",
            "upstreams_owned_services 1.0",
            "upstreams_consul_up 1.0",
            "upstreams_consul_errors_total 0.0",
            "upstreams_ready 1.0",
        ):
            assert line in metrics, line
        assert "upstreams_reconciles_total 0.0" not in metrics

        private_consul.kill()
        wait_until(lambda: get(f"{base}/health")[0] == 503, 10, what="unhealthy without Consul")
        assert "Consul is unreachable" in json.loads(get(f"{base}/health")[1])["reason"]
        metrics = get(f"{base}/metrics")[1]
        assert "upstreams_consul_up 0.0" in metrics
        assert "upstreams_consul_errors_total 0.0" not in metrics
    finally:
        companion.kill()


def test_status_port_in_use_is_a_clear_start_up_error(tmp_path: Path, consul: ConsulAgent) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = files_config(tmp_path, consul, status=f"127.0.0.1:{port}")
        out = subprocess.run(
            [str(REGISTRAR), "run", "--config", str(config)], capture_output=True, text=True, timeout=20
        )
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"upstreams-registrar: Cannot serve the status endpoint on 127.0.0.1:{port}: ")
    assert last.endswith("address already in use.")
    assert "Traceback" not in out.stderr


def test_readiness_is_notified_after_the_first_reconcile_and_logs_are_json(
    tmp_path: Path, consul: ConsulAgent, processes: list[subprocess.Popen[bytes]]
) -> None:
    config = files_config(tmp_path, consul)
    log = tmp_path / "log"
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(20)
        processes.append(launch(config, log, "--log-format", "json", env={"NOTIFY_SOCKET": str(path)}))
        message = sock.recv(4096).decode()
    assert message.startswith("READY=1")
    assert "obs:file:svc" in owned(consul, "obs")  # READY comes after the registration
    processes[0].terminate()
    assert processes[0].wait(10) == 0
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["message"] == "Registered obs:file:svc (service file svc.toml)." for r in records)


# All the companion needs: write the services it registers (register, deregister, update their TTL
# checks; write implies read for listing them). The catalog sync uses the same token (checked below).
REGISTRAR_RULES = 'service_prefix "" { policy = "write" }'


def test_the_token_never_appears_in_logs_or_the_command_line(
    tmp_path: Path, acl_consul: ConsulAgent, processes: list[subprocess.Popen[bytes]]
) -> None:
    secret = token_with(acl_consul, "registrar", REGISTRAR_RULES)
    (tmp_path / "token").write_text(secret + "\n")
    config = files_config(tmp_path, acl_consul, consul_keys='token_file = "token"')
    log = tmp_path / "log"
    proc = launch(config, log, "--debug")
    processes.append(proc)
    wait_until(lambda: "obs:file:svc" in owned(acl_consul, "obs"), 20, what="registered with the token")
    checks = acl_consul.api("GET", "/v1/agent/checks")
    assert checks["obs:file:svc:check1"]["ServiceID"] == "obs:file:svc"
    wait_until(lambda: acl_consul.api("GET", "/v1/catalog/service/svc"), 10, what="synced to the catalog")
    assert secret not in Path(f"/proc/{proc.pid}/cmdline").read_text()
    assert secret not in Path(f"/proc/{proc.pid}/environ").read_bytes().decode(errors="replace")
    proc.terminate()
    assert proc.wait(10) == 0
    assert owned(acl_consul, "obs") == {}  # deregistered on stop with the same token
    assert secret not in log.read_text()


def _spec(sid: str) -> ServiceSpec:
    check = CheckSpec(kind="script", check_id=f"{sid}:script", name="script", argv=("true",))
    return ServiceSpec(id=sid, name="web", address="127.0.0.1", port=80, checks=(check,), origin="test")


def test_health_names_the_first_problem_and_status_prefers_fresh_results() -> None:
    state = RegistrarState(consul="http://127.0.0.1:8500", engine=None)
    assert state.health() == Health(False, "Waiting for the first reconcile.")
    state.reconciled = True
    state.reconcile_done([_spec("a")], {"a:script": {"Status": "critical"}, "other:script": {}})
    assert state.health().ok
    assert state.status()["services"]["a"]["checks"] == {"a:script": "critical"}
    state.results["a:script"] = "passing"  # a result the companion just reported
    assert state.status()["services"]["a"]["checks"] == {"a:script": "passing"}
    state.engine_error = "The container engine at x could not list running containers: down."
    assert state.health().reason == state.engine_error
    state.consul_error = "Consul is unreachable for the list of the agent's services: refused."
    assert state.health() == Health(False, state.consul_error)  # Consul first: nothing can be registered
    state.reconcile_done([], {})
    assert state.results == {} and state.status()["services"] == {}
