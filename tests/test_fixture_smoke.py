from pathlib import Path

import pytest

import harness.nginx
from harness.nginx import NginxServer
from tests.support.consul_agent import ConsulAgent


def test_consul_agent_registers_and_lists_services(consul: ConsulAgent) -> None:
    consul.register_ttl("web", "web-1", 8080)
    assert "web-1" in consul.services()
    health = consul.api("GET", "/v1/health/service/web")
    assert [e["Service"]["ID"] for e in health] == ["web-1"]


def test_an_nginx_that_does_not_start_in_time_is_not_left_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fixture whose part could not start never tears it down: the part must stop itself.
    monkeypatch.setattr(harness.nginx, "START_TIMEOUT", 0.0)
    server = NginxServer(tmp_path / "nginx")
    server.write_config()
    with pytest.raises(TimeoutError, match=str(server.port)):
        server.start()
    assert server.proc is None
    marker = str(tmp_path).encode()
    running = [p for p in Path("/proc").iterdir() if p.name.isdigit() and marker in _cmdline(p)]
    assert running == []


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""
