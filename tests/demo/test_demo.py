"""``upstreams demo`` end to end: the real console script, with real Consul, nginx, Podman, sidecar and
companion, in plain mode; then a look around that nothing it started is left."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

UPSTREAMS = str(Path(sys.executable).with_name("upstreams"))
STEPS = 5


def demo_env() -> dict[str, str]:
    """The environment without Consul and Docker settings of the host, which the demo must not pick up."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("CONSUL_HTTP", "DOCKER_"))}


def run_demo(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [UPSTREAMS, "demo", "--plain", *args], capture_output=True, text=True, timeout=timeout, env=demo_env()
    )


REPLICA = "httpd -f -p 8080 -h /prime"  # a replica's server, as its container (or process) runs it


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes containing ``text``."""
    return list(_processes(text).values())


def _processes(text: str) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found[int(entry.name)] = cmdline
    return found


def replicas_left(before: dict[int, str]) -> list[str]:
    """Replica servers running now that were not running before the demo (another run's are not ours)."""
    return [cmd for pid, cmd in _processes(REPLICA).items() if before.get(pid) != cmd]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def demo_dirs() -> set[Path]:
    return set(Path("/tmp").glob("upstreams-demo-*"))


@pytest.mark.timeout(150)
@pytest.mark.parametrize("engine", ["podman", "processes"])
def test_story_is_observed_and_everything_is_removed(engine: str) -> None:
    before = _processes(REPLICA)
    result = run_demo("--engine", engine, "--duration", "45", timeout=130)
    out = result.stdout
    assert result.returncode == 0, f"{out}\n{result.stderr}"
    assert ("Podman containers" if engine == "podman" else "local processes") in out
    for step in range(1, STEPS + 1):
        assert f"step {step}/{STEPS} observed" in out, out
    assert "story complete" in out
    latencies = re.findall(r"observed: prime-\d+ (?:left|joined) rotation;.*\(latency (\d+) ms\)", out)
    assert len(latencies) == STEPS - 1, out
    assert all(int(ms) < 5000 for ms in latencies)
    assert re.search(r"nginx reloads: [1-9]\d*; failed requests since all replicas served: 0", out), out
    # Nothing left: the folder, any process run from it, the replicas' ports, nginx, Consul.
    workdir = Path(re.findall(r"(/\S+/upstreams-demo-\w+) removed\.", out)[-1])
    assert not workdir.exists()
    assert processes_mentioning(str(workdir)) == []
    assert replicas_left(before) == []
    ports = [
        int(p)
        for p in re.findall(
            r"(?:started prime-\d+ on |listening on http://|at http://)127\.0\.0\.1:(\d+)", out
        )
    ]
    assert len(ports) == STEPS + 2  # five replicas, nginx and Consul
    assert [p for p in ports if listening(p)] == []


@pytest.mark.timeout(60)
def test_port_in_use_is_one_clear_line_and_leaves_nothing() -> None:
    before = demo_dirs()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_demo("--port", str(port), "--duration", "5", timeout=50)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "nginx" in lines[0] and f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0]
    assert demo_dirs() == before
    assert "Consul" not in result.stdout  # it failed before starting anything


@pytest.mark.timeout(90)
def test_sigterm_mid_story_stops_and_removes_everything() -> None:
    before = _processes(REPLICA)
    with subprocess.Popen(
        [UPSTREAMS, "demo", "--plain", "--engine", "podman"],
        stdout=subprocess.PIPE,
        text=True,
        env=demo_env(),
    ) as proc:
        assert proc.stdout is not None
        seen = []
        for text in proc.stdout:  # until a replica's check is failing: containers, exec, every part busy
            seen.append(text)
            if "step 2/5:" in text:
                break
        proc.send_signal(signal.SIGTERM)
        out = "".join(seen) + proc.stdout.read()
        assert proc.wait(60) == 0, out
    assert "stopping (signal received)" in out
    workdir = Path(re.findall(r"(/\S+/upstreams-demo-\w+) removed\.", out)[-1])
    assert not workdir.exists()
    assert processes_mentioning(str(workdir)) == []
    assert replicas_left(before) == []
