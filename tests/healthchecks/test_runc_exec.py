"""``[checks] exec = "runc"``: script checks run by runc on the engine's state, as confined as the engine's exec.

On real Podman and Docker: the command sees the container's filesystem and PID namespace, runs as the
container's user with its capabilities and seccomp filter, is in the container's cgroup, and is killed at
its timeout.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from healthchecks.config import load_config
from healthchecks.engine import DockerEngine
from healthchecks.runc_exec import RuncExec
from plumbing.errors import EngineError
from tests.healthchecks.conftest import REGISTRAR, Companion, checks_of
from tests.healthchecks.engines import EngineDaemon
from tests.support.consul_agent import ConsulAgent
from tests.support.ports import free_port
from tests.support.waiting import wait_until

STATUS = ("Uid:", "CapBnd:", "CapEff:", "Seccomp:")


def _runc(engine: EngineDaemon) -> RuncExec:
    """Podman with runc keeps runc's default state folder; dockerd keeps it under its exec root."""
    if engine.kind == "podman":
        return RuncExec(root=Path("/run/runc"))
    return RuncExec(root=engine.workdir / "exec" / "runtime-runc" / "moby")


def _status_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(STATUS)]


def _engine_exec(engine: EngineDaemon, container_id: str, argv: tuple[str, ...]) -> str:
    async def go() -> str:
        client = DockerEngine(engine.url)
        try:
            return (await client.exec(container_id, argv, 10.0, 65536)).output
        finally:
            await client.close()

    return asyncio.run(go())


@pytest.mark.slow
def test_a_runc_check_runs_confined_like_the_engines_exec(engine: EngineDaemon) -> None:
    container = engine.run("runc1", user="1000:1000")
    container.reload()
    init_cgroup = Path(f"/proc/{container.attrs['State']['Pid']}/cgroup").read_text().splitlines()[-1]
    script = (
        "sh",
        "-c",
        "cat /www/index.html; id -u; id -g; cat /proc/1/cmdline; echo; cat /proc/self/cgroup | tail -n 1; "
        "cat /proc/self/status",
    )
    result = asyncio.run(_runc(engine).exec(container.id, script, 10.0, 65536))
    lines = result.output.splitlines()
    assert (result.exit_code, result.timed_out) == (0, False)
    assert lines[:3] == ["hello", "1000", "1000"]  # the container's filesystem and user
    assert lines[3].startswith("httpd")  # PID 1 of its PID namespace is the container's own command
    assert lines[4] == init_cgroup
    # The same user, capability sets and seccomp mode as a command run through the engine's exec API.
    assert _status_lines(result.output) == _status_lines(_engine_exec(engine, container.id, script))
    assert "Seccomp:\t2" in _status_lines(result.output)


def _running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_a_runc_check_is_killed_at_its_timeout_with_its_children(engine: EngineDaemon) -> None:
    container = engine.run("runc2")
    started = time.monotonic()
    result = asyncio.run(
        _runc(engine).exec(container.id, ("sh", "-c", "echo before; sleep 4242 & sleep 4343"), 1.0, 4096)
    )
    assert result.timed_out and result.output == "before\n"
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while (_running("4242") or _running("4343")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running("sleep\x004242") == [] and _running("sleep\x004343") == []


@pytest.mark.slow
def test_a_container_runc_does_not_know_is_an_engine_error_not_a_warning(engine: EngineDaemon) -> None:
    with pytest.raises(EngineError, match="runc could not run the check in container 0123456789ab"):
        asyncio.run(_runc(engine).exec("0123456789abcdef", ("true",), 5.0, 4096))


def test_checks_exec_defaults_to_the_engine_and_takes_runc(tmp_path: Path) -> None:
    config = tmp_path / "registrar.toml"
    config.write_text('[registrar]\nhostname = "h1"\n')
    assert load_config(config, {}).runc is None
    config.write_text('[registrar]\nhostname = "h1"\n[checks]\nexec = "runc"\nrunc_root = "state"\n')
    assert load_config(config, {}).runc == RuncExec(root=tmp_path / "state")
    config.write_text('[registrar]\nhostname = "h1"\n[checks]\nexec = "nsenter"\n')
    with pytest.raises(Exception, match=r"\[checks\]: key 'exec' must be one of engine, runc, not 'nsenter'"):
        load_config(config, {})


@pytest.mark.slow
def test_the_companion_runs_container_checks_by_runc_when_told(
    engine: EngineDaemon, consul: ConsulAgent, companion_factory: Callable[..., Companion]
) -> None:
    companion = companion_factory(engine)
    calls = companion.workdir / "runc-calls"
    runc = companion.workdir / "runc"  # runc itself, counting its calls: the check must go this way
    runc.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec runc "$@"\n')
    runc.chmod(0o755)
    with companion.config.open("a") as config:
        config.write(f'\n[checks]\nexec = "runc"\nrunc_root = "{_runc(engine).root}"\nrunc = "{runc}"\n')
    companion.start()
    script = 'sh -c "cat /www/index.html || exit 2"'
    labels = {"SERVICE_NAME": "rweb", "SERVICE_CHECK_SCRIPT": script, "SERVICE_CHECK_INTERVAL": "1s"}
    container = engine.run("runc3", labels=labels, ports={"8080/tcp": free_port()})
    sid = f"{companion.hostname}:runc3:8080"
    wait_until(
        lambda: checks_of(consul, sid).get(f"{sid}:script") == "passing", 20, what="runc check passing"
    )
    container.exec_run(["rm", "/www/index.html"])
    wait_until(
        lambda: checks_of(consul, sid).get(f"{sid}:script") == "critical", 10, what="runc check critical"
    )
    assert "index.html" in consul.api("GET", "/v1/agent/checks")[f"{sid}:script"]["Output"]
    assert "exec --pid-file" in calls.read_text() and container.id in calls.read_text()


def test_check_warns_when_runc_state_is_not_there(tmp_path: Path) -> None:
    config = tmp_path / "registrar.toml"
    config.write_text(
        f'[registrar]\nhostname = "h1"\nengine = "unix://{tmp_path}/none.sock"\n'
        f'[checks]\nexec = "runc"\nrunc_root = "{tmp_path}/no-state"\n'
    )
    done = subprocess.run(
        [str(REGISTRAR), "check", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert f"warning: [checks] runc_root {tmp_path}/no-state is not a folder" in done.stderr
