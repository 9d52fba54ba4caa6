import os
import socket
from pathlib import Path

import pytest

import harness.nginx
from harness.nginx import NginxServer
from harness.sockets import connections_to
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


def test_connections_are_counted_per_process_port_and_family_and_only_while_established() -> None:
    with (
        socket.create_server(("127.0.0.1", 0)) as v4,
        socket.create_server(("::1", 0), family=socket.AF_INET6) as v6,
    ):
        port4, port6 = v4.getsockname()[1], v6.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port4)) for _ in range(3)]
        clients.append(socket.create_connection(("::1", port6)))
        accepted = [v4.accept()[0] for _ in range(3)] + [v6.accept()[0]]
        assert connections_to(os.getpid(), port4) == 3  # the server's accepted ends point elsewhere
        assert connections_to(os.getpid(), port6) == 1
        assert connections_to(1, port4) == 0  # another process's sockets are not this one's
        for sock in clients + accepted:
            sock.close()
        assert connections_to(os.getpid(), port4) == 0  # closed: TIME_WAIT is not a connection
