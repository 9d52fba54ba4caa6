"""Child processes of the real parts: stopped for sure, whoever started them.

``Child`` is the asynchronous form the demo uses (its own session, its log in a file, an error naming the
part); ``stop_process`` stops a ``subprocess.Popen`` the tests and benchmarks started synchronously.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from plumbing.errors import UpstreamsError

__all__ = ["Child", "PartFailed", "kill_mentioning", "stop_process"]

log = logging.getLogger(__name__)
STOP_TIMEOUT = 10.0


class PartFailed(UpstreamsError):
    """Raised when a part (Consul, nginx, Podman, the sidecar, ...) cannot start or fails."""


class Child:
    """One child process, named after the part it plays."""

    def __init__(self, part: str, argv: Sequence[str], log_file: Path, env: Mapping[str, str]) -> None:
        self.part = part
        self.argv = tuple(argv)
        self.log_file = log_file
        self.env = dict(env)
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Child:
        """Start the process; raise PartFailed if it cannot be run at all."""
        try:
            with self.log_file.open("ab") as out:
                # Its own session: Ctrl-C in the terminal reaches only the parent (the demo), which then
                # stops every part in order (the companion deregisters before Consul goes away).
                self.proc = await asyncio.create_subprocess_exec(
                    *self.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    env=self.env,
                    start_new_session=True,
                )
        except OSError as exc:
            raise PartFailed(f"Cannot start {self.part} ({self.argv[0]}): {exc.strerror or exc}.") from exc
        return self

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc is not None and self.proc.returncode is None

    def failure(self, what: str = "exited") -> PartFailed:
        """An error naming the part, its exit code and the last line it logged."""
        code = self.proc.returncode if self.proc else None
        return PartFailed(f"{self.part} {what} (exit code {code}): {self.last_line()}")

    def last_line(self) -> str:
        """The last non-empty line of the part's log, or a placeholder."""
        with contextlib.suppress(OSError):
            lines = [x.strip() for x in self.log_file.read_text(errors="replace").splitlines() if x.strip()]
            if lines:
                return lines[-1][-300:]
        return "it logged nothing"

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the process, wait, and kill its whole process group if it does not stop in time."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                async with asyncio.timeout(STOP_TIMEOUT):  # not wait_for: it can swallow a cancel on 3.11
                    await proc.wait()
            except TimeoutError:
                log.warning("%s did not stop within %gs; killing it.", self.part, STOP_TIMEOUT)
        # Whatever it started in its session (nginx workers, script checks) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await proc.wait()
        self.proc = None


def stop_process(
    proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    """Ask a child to stop with ``sig``; kill it if it has not gone after ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kill_mentioning(marker: str) -> None:
    """SIGKILL every other process whose command line contains ``marker`` (a folder of ours: what an engine
    or a part started there, such as conmon, a containerd shim or a check script)."""
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
