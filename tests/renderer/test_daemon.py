"""The sidecar daemon in-process, against a real Consul: a counting nginx and a fake clock as its seams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from plumbing.errors import NginxCheckFailed, NginxReloadFailed
from renderer.config import load_config
from renderer.daemon import LOG_EACH, Sidecar, _log_changes
from tests.support.consul_agent import ConsulAgent

pytestmark = pytest.mark.slow

TEMPLATE = '{% for i in service("web") %}server 127.0.0.1:{{ i.port }};\n{% endfor %}'


class CountingNginx:
    """Implements renderer.nginx.Nginx: counts checks and reloads; its check can be told to refuse."""

    def __init__(self, *, check_fails: bool = False, reload_failures: int = 0) -> None:
        self.checks = self.reloads = 0
        self.check_fails = check_fails
        self.reload_failures = reload_failures  # how many reloads fail before they work

    async def check(self) -> None:
        self.checks += 1
        if self.check_fails:
            raise NginxCheckFailed("nginx rejected the new config: refused by the test.")

    async def reload(self) -> None:
        if self.reload_failures > 0:
            self.reload_failures -= 1
            raise NginxReloadFailed("The reload command exited 1: refused by the test.")
        self.reloads += 1


class FakeClock:
    """The daemon's quiescence clock; only the test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write_config(folder: Path, consul: ConsulAgent, *, template: str = TEMPLATE, wait: str = "0s") -> Path:
    (folder / "out").mkdir(exist_ok=True)
    (folder / "web.j2").write_text(template)
    config = folder / "sidecar.toml"
    config.write_text(
        f"""[consul]
address = "{consul.address}"
[wait]
min = "{wait}"
[status]
listen = ""
[nginx]
pid_file = "{folder / "nginx.pid"}"
[[template]]
source = "web.j2"
destination = "out/web.conf"
"""
    )
    return config


@contextlib.asynccontextmanager
async def running(sidecar: Sidecar) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(sidecar.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(probe: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while True:
                if probe():
                    return
                await asyncio.sleep(0.02)  # the probes read plain attributes: nothing to await
    except TimeoutError:
        raise AssertionError(f"Timed out waiting until {what}.") from None


def instances(sidecar: Sidecar) -> int:
    return len(sidecar.status()["services"].get("web", []))


def test_a_burst_of_changes_gives_one_apply(tmp_path: Path, consul: ConsulAgent) -> None:
    nginx, clock = CountingNginx(), FakeClock()
    sidecar = Sidecar(load_config(write_config(tmp_path, consul, wait="0.2s"), {}), nginx=nginx, clock=clock)
    out = tmp_path / "out" / "web.conf"

    async def scenario() -> None:
        async with running(sidecar):
            await eventually(lambda: nginx.reloads == 1, "the first render is applied")
            for n in range(3):  # three changes, each seen by the sidecar (three snapshots)
                await asyncio.to_thread(consul.register, "web", f"web{n}", 8000 + n)
                await eventually(lambda n=n: instances(sidecar) == n + 1, f"the sidecar sees web{n}")
            assert nginx.checks == 1  # held back: the fake clock has not moved past the quiet period
            clock.now = 10.0
            await eventually(lambda: nginx.reloads == 2, "the burst is applied once the clock moves")
            await asyncio.sleep(0.2)
            assert (nginx.checks, nginx.reloads) == (2, 2)
            assert out.read_text().count("server ") == 3

    asyncio.run(scenario())


def test_a_refused_check_is_not_retried_on_the_same_bytes(
    tmp_path: Path, consul: ConsulAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="renderer.daemon")
    nginx = CountingNginx(check_fails=True)
    sidecar = Sidecar(load_config(write_config(tmp_path, consul), {}), nginx=nginx, clock=FakeClock())

    async def scenario() -> None:
        async with running(sidecar):
            await eventually(lambda: nginx.checks == 1, "the first render is checked")
            assert sidecar.last_error is not None and "refused by the test" in sidecar.last_error
            # A critical instance changes the snapshot but not the bytes (only passing ones are written).
            await asyncio.to_thread(consul.register_ttl, "web", "web0", 8000, status="critical")
            await eventually(
                lambda: "not checking it again" in caplog.text, "the round skips the refused bytes"
            )
            assert nginx.checks == 1
            await asyncio.to_thread(consul.set_ttl, "web0", "passing")
            await eventually(lambda: nginx.checks == 2, "new bytes are checked")
            assert nginx.reloads == 0
            assert not (tmp_path / "out" / "web.conf").exists()  # every refused write was restored

    asyncio.run(scenario())


def test_sighup_swaps_the_runtime_in_one_piece(tmp_path: Path, consul: ConsulAgent) -> None:
    nginx = CountingNginx()
    config = write_config(tmp_path, consul)
    sidecar = Sidecar(load_config(config, {}), nginx=nginx, clock=FakeClock())
    out = tmp_path / "out" / "web.conf"

    async def scenario() -> None:
        async with running(sidecar) as task:
            await asyncio.to_thread(consul.register, "web", "web0", 8000)
            await eventually(lambda: out.exists() and "8000" in out.read_text(), "the first render")
            before = sidecar.runtime
            config.write_text("not toml = = =")
            sidecar.reload_config()
            assert sidecar.runtime is before  # an invalid config changes nothing
            write_config(tmp_path, consul, template=TEMPLATE.replace("server", "server_new"), wait="2s")
            sidecar.reload_config()
            after = sidecar.runtime
            assert after is not before
            assert (after.config.wait.min, after.policy.min) == (2.0, 2.0)
            assert after.templates is not before.templates
            assert after.nginx is nginx  # a test's nginx stays through SIGHUP
            await eventually(lambda: "server_new 127.0.0.1:8000;" in out.read_text(), "the new template")
        assert task.cancelled()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == []  # the watcher's and the template watch's tasks stopped with the daemon

    asyncio.run(scenario())


def test_a_failed_reload_is_retried_until_nginx_reloads(tmp_path: Path, consul: ConsulAgent) -> None:
    nginx = CountingNginx(reload_failures=1)
    sidecar = Sidecar(load_config(write_config(tmp_path, consul), {}), nginx=nginx, clock=FakeClock())

    async def scenario() -> None:
        async with running(sidecar):
            await eventually(lambda: nginx.checks == 1, "the first render is checked")
            assert sidecar.health().reason.startswith("The last change was not applied: The reload command")
            await eventually(lambda: nginx.reloads == 1, "the retry reloads nginx")
            assert sidecar.health().ok
            assert nginx.checks == 1  # the files were checked once; only the reload was repeated

    asyncio.run(scenario())


def test_a_first_read_of_many_services_is_one_line_not_thousands(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="renderer.daemon")
    _log_changes([(f"s{i}", 4, 3) for i in range(LOG_EACH)])
    each = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert each[0] == "Service s0 changed: 4 instances, 3 passing." and len(each) == LOG_EACH
    caplog.clear()
    _log_changes([(f"s{i}", 4, 3) for i in range(5000)])
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "5000 services changed: 20000 instances, 15000 passing."
    ]
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 5000
