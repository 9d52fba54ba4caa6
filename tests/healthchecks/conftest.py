"""Fixtures of the companion's tests: real engines (Podman and Docker, one each per session), and the
real ``upstreams-registrar`` console script run as a subprocess against the session's Consul agent."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.healthchecks.engines import EngineDaemon, build_image_tar
from tests.support.consul_agent import ConsulAgent

REGISTRAR = Path(sys.executable).parent / "upstreams-registrar"
ENGINES = ("podman", "docker")


@pytest.fixture(scope="session")
def engine_root() -> Iterator[Path]:
    """A short folder for sockets (unix socket paths are limited to 108 bytes)."""
    root = Path(tempfile.mkdtemp(prefix="upe-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def image_tar(engine_root: Path) -> Path:
    return build_image_tar(engine_root)


_engines: dict[str, EngineDaemon] = {}


@pytest.fixture(scope="session", params=ENGINES)
def engine_daemon(
    request: pytest.FixtureRequest, engine_root: Path, image_tar: Path
) -> Iterator[EngineDaemon]:
    """A running engine of our own, per kind, for the whole session."""
    kind = str(request.param)
    workdir = engine_root / kind
    workdir.mkdir()
    daemon = EngineDaemon(kind, workdir, image_tar)
    try:
        daemon.start()
        daemon.load_image()
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def engine(engine_daemon: EngineDaemon) -> Iterator[EngineDaemon]:
    """The session's engine with no containers, before and after the test (restarted if a test stopped it)."""
    if engine_daemon.proc is None:
        engine_daemon.start()
    engine_daemon.remove_all()
    yield engine_daemon
    if engine_daemon.proc is None:
        engine_daemon.start()
    engine_daemon.remove_all()


class Companion:
    """The real console script, run with a config file written by the test.

    No status endpoint unless ``listen`` says where: several companions must not share the default port.
    """

    def __init__(
        self,
        workdir: Path,
        consul: ConsulAgent,
        engine: EngineDaemon | None,
        *,
        listen: str = "",
        **registrar: Any,
    ) -> None:
        self.workdir = workdir
        self.config = workdir / "registrar.toml"
        self.log = workdir / "registrar.log"
        self.proc: subprocess.Popen[bytes] | None = None
        settings: dict[str, Any] = {
            "hostname": f"test-host-{engine.kind if engine else 'files'}",
            "advertise_address": "127.0.0.1",
            "resync": "60s",
            "deregister_on_stop": True,
        }
        if engine is not None:
            settings["engine"] = engine.url
        else:
            settings["containers"] = False
        settings.update(registrar)
        lines = ["[consul]", f'address = "{consul.address}"', "", "[registrar]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
        lines += ["", "[status]", f"listen = {json.dumps(listen)}"]
        self.config.write_text("\n".join(lines) + "\n")
        self.hostname = settings["hostname"]

    def start(self) -> Companion:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSUL_", "DOCKER_"))}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(REGISTRAR), "run", "--config", str(self.config), "--debug"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return self

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM; return the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the companion did not stop within {timeout}s; see {self.log}") from None
        self.proc = None
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def companion_factory(tmp_path: Path, consul: ConsulAgent) -> Iterator[Callable[..., Companion]]:
    """Make companions (not started); each is killed at the end of the test if still running."""
    made: list[Companion] = []

    def make(engine: EngineDaemon | None, **registrar: Any) -> Companion:
        folder = tmp_path / f"companion{len(made)}"
        folder.mkdir()
        companion = Companion(folder, consul, engine, **registrar)
        made.append(companion)
        return companion

    yield make
    for companion in made:
        companion.kill()


def owned(consul: ConsulAgent, hostname: str) -> dict[str, Any]:
    """The agent's services carrying this hostname's owner marker."""
    return {
        sid: svc
        for sid, svc in consul.services().items()
        if (svc.get("Meta") or {}).get("upstreams-registrar") == hostname
    }


def checks_of(consul: ConsulAgent, service_id: str) -> dict[str, str]:
    """CheckID -> status of one service's checks on the agent."""
    return {
        cid: check["Status"]
        for cid, check in consul.api("GET", "/v1/agent/checks").items()
        if check.get("ServiceID") == service_id
    }
