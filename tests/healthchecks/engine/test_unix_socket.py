"""What a missing or wrong engine socket is called, and what to start (one sentence each)."""

from __future__ import annotations

import socket
from pathlib import Path

from healthchecks.engine.unix_socket import socket_path, socket_problem


def test_tcp_urls_have_no_socket_file() -> None:
    assert socket_path("tcp://127.0.0.1:2375") is None
    assert socket_problem("tcp://127.0.0.1:2375") is None


def test_the_command_to_start_follows_the_socket_path(tmp_path: Path) -> None:
    podman = socket_problem(f"unix://{tmp_path}/podman/podman.sock")
    docker = socket_problem(f"unix://{tmp_path}/docker.sock")
    assert podman is not None and "podman system service --time=0" in podman and "Docker" not in podman
    assert docker is not None and "systemctl start docker" in docker and "podman" not in docker


def test_a_plain_file_is_not_a_socket_and_a_real_socket_is_fine(tmp_path: Path) -> None:
    (tmp_path / "docker.sock").write_text("")
    problem = socket_problem(f"unix://{tmp_path}/docker.sock")
    assert problem is not None and problem.startswith(
        f"The container engine socket {tmp_path}/docker.sock is not"
    )
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "real.sock"))
        assert socket_problem(f"unix://{tmp_path}/real.sock") is None
