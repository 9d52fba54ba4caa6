"""Script checks leave no engine helper process behind (Podman's conmon lingered 300 s per check run)."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from healthchecks.engine import DockerEngine
from healthchecks.engine.exec_monitors import end_exec_monitors
from healthchecks.engine.unix_socket import socket_problem
from plumbing.errors import EngineError
from tests.healthchecks.engines import EngineDaemon

RUNS = 12


@pytest.fixture(autouse=True)
def _collect_sdk_sockets() -> Iterator[None]:
    """The SDK's upgraded exec connections are closed only when collected; collect them here."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _helpers(marker: str) -> set[int]:
    """The engine's processes (their argv names its private folder) and all their descendants."""
    parents: dict[int, int] = {}
    roots: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if marker.encode() in argv:
            roots.add(int(entry.name))
    found = set(roots)
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found


def _settled(marker: str, most: int, timeout: float = 15.0) -> int:
    """The helper count once it is at most ``most`` (or whatever it is at the deadline)."""
    deadline = time.monotonic() + timeout
    while (count := len(_helpers(marker))) > most and time.monotonic() < deadline:
        time.sleep(0.1)
    return count


@pytest.mark.slow
def test_finished_checks_leave_no_helper_processes(engine: EngineDaemon) -> None:
    container = engine.run("monitors1")
    client = DockerEngine(engine.url)
    marker = str(engine.workdir)

    async def checks() -> list[int]:
        codes = []
        for n in range(RUNS):
            result = await client.exec(container.id, ("sh", "-c", f"exit {n % 3}"), 5.0, 4096)
            codes.append(result.exit_code)
        await client.close()
        return codes

    async def first() -> None:
        warm = DockerEngine(engine.url)
        await warm.exec(container.id, ("true",), 5.0, 64)
        await warm.close()

    # One run first: the container's own helpers (conmon, or containerd's shim) exist from then on.
    asyncio.run(first())
    baseline = _settled(marker, 0, timeout=1.0)
    assert asyncio.run(checks()) == [n % 3 for n in range(RUNS)]  # exit codes are still read
    # Before the fix, Podman kept two conmon processes per run for 300 s: 24 more here.
    assert _settled(marker, baseline) <= baseline
    assert container.attrs is not None
    container.reload()
    assert not container.attrs.get("ExecIDs")  # and no exec session is left in the engine's state


def test_missing_engine_socket_says_what_to_start(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/podman/podman.sock"
    problem = socket_problem(url)
    assert problem is not None
    assert problem.startswith(f"The container engine socket {tmp_path}/podman/podman.sock does not exist")
    assert f"podman system service --time=0 {url}" in problem
    assert problem.count(". ") == 0 and problem.endswith(".")

    async def events() -> None:
        async for _ in DockerEngine(url).events():
            pass

    with pytest.raises(EngineError) as caught:
        asyncio.run(events())
    assert str(caught.value) == problem  # no nested tuple of the SDK's


def test_present_socket_and_tcp_urls_are_no_problem(engine: EngineDaemon) -> None:
    assert socket_problem(engine.url) is None
    assert socket_problem("tcp://127.0.0.1:2375") is None


# conmon's exit path as it matters here: the monitor forks a child and waits for it; the child handles
# SIGTERM (forwarding it to a command that is gone) and then sleeps the exit delay, which a signal ends.
FAKE_CONMON = """
import ctypes, os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: None)
child = os.fork()
if child:
    os.waitpid(child, 0)
    sys.exit(0)
time.sleep(0.3)  # between fork and sleep(): a SIGTERM now is handled, then the whole delay is slept
ctypes.CDLL(None).sleep(600)
"""


def test_a_monitor_signalled_before_it_sleeps_still_ends(tmp_path: Path) -> None:
    conmon = tmp_path / "conmon"  # the name a process gets from the file it runs
    conmon.symlink_to(sys.executable)
    exec_id = "e" * 64
    monitor = subprocess.Popen([str(conmon), "-c", FAKE_CONMON, exec_id])
    try:
        assert end_exec_monitors(exec_id) == 1
        monitor.wait(timeout=10)  # the child left its sleep, so the monitor ended too
    finally:
        monitor.kill()
        monitor.wait()
        for pid in _helpers(exec_id):
            os.kill(pid, 9)
