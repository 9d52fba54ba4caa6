"""Checks the companion runs itself, each reported to its TTL check on the agent.

* ``script`` in a container: the engine's exec API (or, opted in, ``runc exec``: runc_exec.py), argv as
  given (no shell unless asked), killed at its timeout; exit 0 is passing, 1 warning, anything else (and a
  timeout) critical, as Consul does.
* ``script`` on the host (service files): a subprocess in its own process group, killed at its timeout.
* ``health``: the container's own HEALTHCHECK status (healthy -> passing, starting and unhealthy ->
  critical), read again on each run and whenever a ``health_status`` event pokes it.

Output is bounded (``limit`` bytes). One asyncio task per check; ``Runners.update`` starts and cancels
them so they always match the registered specs. Timeouts use ``asyncio.timeout``, not ``wait_for``: on
Python 3.11, ``wait_for`` swallows a cancellation that arrives as its awaitable finishes, and a runner
that missed its one cancellation would keep the daemon from stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from plumbing.errors import ConsulError, EngineError

from .agent import Agent
from .engine import Engine
from .spec import CheckSpec

if TYPE_CHECKING:  # runc_exec runs its command through run_host_script below
    from .runc_exec import RuncExec

__all__ = ["Report", "Runners", "run_host_script", "status_for_exit"]

log = logging.getLogger(__name__)
HEALTH = {"healthy": "passing", "starting": "critical", "unhealthy": "critical"}
# Told of every result: (check ID, status, whether the agent accepted the update).
Report = Callable[[str, str, bool], None]


def status_for_exit(code: int) -> str:
    """Consul's mapping of a script's exit code to a check status."""
    return "passing" if code == 0 else "warning" if code == 1 else "critical"


async def run_host_script(
    argv: tuple[str, ...], timeout: float, limit: int, before_kill: Callable[[], None] | None = None
) -> tuple[int, str, bool]:
    """Run argv on the host; return (exit code, bounded output, timed out). ``before_kill`` runs first
    when the process group is killed (the runc path kills the command in the container with it)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return 127, f"Cannot start {argv[0]!r}: {exc.strerror or exc}.", False
    assert proc.stdout is not None
    buffer = bytearray()

    async def drain() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            if len(buffer) < limit:
                buffer.extend(chunk[: limit - len(buffer)])
        await proc.wait()

    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            await drain()
    except TimeoutError:
        timed_out = True
    finally:
        await _kill_group(proc, before_kill)
    code = proc.returncode if proc.returncode is not None else -9
    return code, bytes(buffer).decode("utf-8", errors="replace"), timed_out


async def _kill_group(proc: asyncio.subprocess.Process, before_kill: Callable[[], None] | None) -> None:
    """Kill the process group of a command still running (after ``before_kill``), and reap it."""
    if proc.returncode is None:
        if before_kill is not None:
            before_kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await proc.wait()


class Runners:
    """One task per check the companion runs; ``update`` makes the set match the registered specs."""

    def __init__(
        self,
        agent: Agent,
        engine: Engine | None,
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
        limit: int,
        report: Report,
        runc: RuncExec | None = None,
    ) -> None:
        self.agent = agent
        self.engine = engine
        self.runc = runc  # set: container scripts run by runc exec, not through the engine's API
        self.spawn = spawn
        self.limit = limit
        self.report = report
        self._tasks: dict[str, tuple[CheckSpec, asyncio.Task[None], asyncio.Event]] = {}

    def update(self, checks: Iterable[CheckSpec]) -> None:
        """Start runners for new or changed checks, cancel those no longer wanted."""
        wanted = {c.check_id: c for c in checks if c.runs_here}
        for check_id, (spec, task, _) in list(self._tasks.items()):
            if wanted.get(check_id) != spec:
                task.cancel()
                del self._tasks[check_id]
        for check_id, spec in wanted.items():
            if check_id not in self._tasks:
                wake = asyncio.Event()
                self._tasks[check_id] = (spec, self.spawn(self._run(spec, wake)), wake)

    def poke(self, check_ids: Iterable[str] = (), container_id: str | None = None) -> None:
        """Run some checks now: these IDs, or the health checks of one container."""
        ids = set(check_ids)
        for check_id, (spec, _, wake) in self._tasks.items():
            if check_id in ids or (
                container_id and spec.kind == "health" and spec.container_id == container_id
            ):
                wake.set()

    def stop(self) -> None:
        """Cancel every runner."""
        for _, task, _ in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    async def _run(self, check: CheckSpec, wake: asyncio.Event) -> None:
        last: tuple[str, str] | None = None
        while True:
            wake.clear()
            status, output = await self.probe(check)
            if (status, output) != last:
                log.info("Check %s is %s.", check.check_id, status)
            try:
                await self.agent.update_check(check.check_id, status, output)
                last = (status, output)
            except ConsulError as exc:
                log.warning("%s", exc)
                self.report(check.check_id, status, False)
            else:
                self.report(check.check_id, status, True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(check.interval):
                    await wake.wait()

    async def probe(self, check: CheckSpec) -> tuple[str, str]:
        """Run one check once; return (status, output)."""
        if check.kind == "health":
            return await self._health(check)
        if check.container_id is None:
            code, output, timed_out = await run_host_script(check.argv, check.timeout, self.limit)
        else:
            runner = self.runc or self.engine
            if runner is None:
                return "critical", "No container engine is configured."
            try:
                result = await runner.exec(check.container_id, check.argv, check.timeout, self.limit)
            except EngineError as exc:
                return "critical", str(exc)
            code, output, timed_out = result.exit_code, result.output, result.timed_out
        if timed_out:
            return "critical", f"Timed out after {check.timeout:g}s.\n{output}"
        return status_for_exit(code), output

    async def _health(self, check: CheckSpec) -> tuple[str, str]:
        if self.engine is None or check.container_id is None:
            return "critical", "No container engine is configured."
        try:
            info = await self.engine.inspect(check.container_id)
        except EngineError as exc:
            return "critical", str(exc)
        if info is None or info.health is None:
            return "critical", "The container has no health status."
        return HEALTH.get(info.health, "critical"), f"Container health: {info.health}.\n{info.health_output}"
