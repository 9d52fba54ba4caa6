"""The console script's contract: exit codes, one-sentence errors, ``check``, and a prompt SIGTERM stop.

Exit codes follow the table in docs/configuration.md, shared with ``upstreams``: 0 done, 2 bad usage or config
(for ``check`` too: a bad config is its finding), 1 ``run`` stopped by an error it cannot retry.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.healthchecks.conftest import REGISTRAR, owned
from tests.support.consul_agent import ConsulAgent
from tests.support.waiting import wait_until


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REGISTRAR), *args], capture_output=True, text=True, timeout=30)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_check_accepts_a_valid_config_and_service_files(tmp_path: Path) -> None:
    services = tmp_path / "services.d"
    services.mkdir()
    write(services / "a.toml", 'name = "a"\nport = 1\n[[checks]]\nttl = "30s"\n')
    config = write(
        tmp_path / "r.toml",
        f'[registrar]\nengine = "unix:///nonexistent.sock"\nservices_dir = "{services}"\n',
    )
    result = run("check", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "OK (1 service files)" in result.stdout
    # The engine may start later: a warning naming the socket and what to start, not a failure.
    assert result.stderr == (
        "upstreams-registrar: warning: The container engine socket /nonexistent.sock does not exist: start "
        "the engine's API service on it (Podman: `podman system service --time=0 unix:///nonexistent.sock &`; "
        "Docker: `systemctl start docker`).\n"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[registrar]\nresinc = "30s"\n', "unknown key 'resinc'"),
        ('[registrar]\nresync = "soon"\n', "key 'resync' is invalid"),
        ('[registrar]\nengine = "/var/run/docker.sock"\n', "key 'engine' must be unix:///path"),
        ('[registrar]\nservices_dir = "missing"\n', "key 'services_dir' names"),
        ('[consul]\naddress = "ftp://x"\n', "is not host:port"),
        ("[registrar\n", "is not valid TOML"),
    ],
)
def test_check_rejects_a_bad_config_in_one_sentence(tmp_path: Path, text: str, message: str) -> None:
    result = run("check", "--config", str(write(tmp_path / "r.toml", text)))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_check_reports_each_bad_service_file(tmp_path: Path) -> None:
    services = tmp_path / "services.d"
    services.mkdir()
    write(services / "a.toml", 'name = "a b"\n')
    write(services / "b.json", '{"name": "b", "checks": [{"http": "x", "tcp": "y"}]}')
    config = write(tmp_path / "r.toml", f'[registrar]\ncontainers = false\nservices_dir = "{services}"\n')
    result = run("check", "--config", str(config))
    assert result.returncode == 2
    assert "a.toml: key 'name' must be" in result.stderr
    assert "needs exactly one of" in result.stderr


def test_debug_prints_the_traceback(tmp_path: Path) -> None:
    result = run("check", "--config", str(tmp_path / "missing.toml"), "--debug")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "Cannot read config file" in result.stderr


def test_usage_errors_exit_2() -> None:
    assert run().returncode == 2
    assert run("run").returncode == 2
    assert run("dance", "--config", "x").returncode == 2


@pytest.mark.slow
def test_sigterm_stops_promptly_even_without_engine_or_consul(
    tmp_path: Path, private_consul: ConsulAgent
) -> None:
    """Neither an absent engine nor a stopped agent makes the companion exit; SIGTERM does, at once."""
    services = tmp_path / "services.d"
    services.mkdir()
    write(services / "svc.toml", 'name = "svc"\nport = 80\n')
    config = write(
        tmp_path / "r.toml",
        f'[consul]\naddress = "{private_consul.address}"\n[registrar]\nhostname = "h1"\n'
        f'engine = "unix://{tmp_path}/no-engine.sock"\nservices_dir = "{services}"\n[status]\nlisten = ""\n',
    )
    log = (tmp_path / "log").open("wb")
    proc = subprocess.Popen([str(REGISTRAR), "run", "--config", str(config)], stdout=log, stderr=log)
    try:
        wait_until(lambda: "h1:file:svc" in owned(private_consul, "h1"), 15, what="file service registered")
        private_consul.stop()
        time.sleep(1.0)
        assert proc.poll() is None
        private_consul.start()
        wait_until(
            lambda: "h1:file:svc" in owned(private_consul, "h1"), 20, what="re-registered on the fresh agent"
        )
        started = time.monotonic()
        proc.terminate()
        assert proc.wait(10) == 0
        assert time.monotonic() - started < 5
        assert owned(private_consul, "h1") == {}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    text = (tmp_path / "log").read_text()
    # One sentence naming the socket and what to start, never the SDK's nested tuple.
    assert f"The container engine socket {tmp_path}/no-engine.sock does not exist: start" in text
    assert "FileNotFoundError" not in text and "Connection aborted" not in text
    # Said by the loop that reconnects, not once more by the one that reconciles.
    assert [line for line in text.splitlines() if "does not exist" in line and "Retrying" in line] == []
