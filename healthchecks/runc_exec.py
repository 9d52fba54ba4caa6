"""Container script checks run by ``runc exec`` on the engine's own runc state (``[checks] exec = "runc"``).

Opt-in; the default is the engine's exec API. The confinement is the engine's own: runc, which the engine
itself runs for an exec, takes the command's user, environment, capabilities, seccomp program, AppArmor or
SELinux label, namespaces and cgroups from the container's spec. What goes away is the engine's share of
the cost (its API, conmon or containerd and its shim): about 1.5x less machine CPU per check on Docker
and 3x on Podman, measured with runc launched by the benchmark (docs/benchmarks.md, section 5), and no
exec session or monitor process left behind.

It needs the companion where runc's state is (on the host, or with the host's PID namespace and the state
folder mounted), as root, with the runc the engine uses. nsenter was measured too and is not offered: it
leaves the command the host's full capability set and no seccomp filter.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from plumbing.errors import EngineError

from .engine import ExecResult
from .runner import run_host_script

__all__ = ["RuncExec"]


@dataclass(frozen=True, kw_only=True)
class RuncExec:
    """How to reach the engine's runc: its state folder (``runc --root``) and the binary."""

    root: Path
    binary: str = "runc"

    def argv(self, container_id: str, pid_file: Path, argv: tuple[str, ...]) -> tuple[str, ...]:
        """The ``runc exec`` command line for one check run."""
        return (
            self.binary,
            "--root",
            str(self.root),
            "exec",
            "--pid-file",
            str(pid_file),
            container_id,
            *argv,
        )

    def problem(self) -> str | None:
        """Why checks run this way would fail here (no state folder, no runc), as a sentence; None if none."""
        if not self.root.is_dir():
            return (
                f"[checks] runc_root {self.root} is not a folder: container script checks will be critical."
            )
        if shutil.which(self.binary) is None:
            return f"[checks] runc {self.binary!r} is not found: container script checks will be critical."
        return None

    async def exec(self, container_id: str, argv: tuple[str, ...], timeout: float, limit: int) -> ExecResult:
        """Run argv in the container; kill it at the timeout; raise EngineError when runc cannot start it."""
        with tempfile.TemporaryDirectory(prefix="upstreams-runc-") as folder:
            pid_file = Path(folder) / "pid"
            code, output, timed_out = await run_host_script(
                self.argv(container_id, pid_file, argv), timeout, limit, before_kill=lambda: _kill(pid_file)
            )
            started = pid_file.exists()
        if not started and not timed_out:
            # runc writes the pid file once the command runs: without it, the exit code is runc's own
            # (1 for a missing container), which must not read as the check's "warning".
            what = output.strip().splitlines()[-1] if output.strip() else f"exit code {code}"
            raise EngineError(f"runc could not run the check in container {container_id[:12]}: {what}")
        return ExecResult(exit_code=code, output=output, timed_out=timed_out)


def _kill(pid_file: Path) -> None:
    """SIGKILL the command's process group (runc starts the command in a session of its own)."""
    with contextlib.suppress(OSError, ValueError):
        # While runc exec waits for it, the command is not reaped, so the pid is still its own.
        pid = int(pid_file.read_text().strip())
        group = os.getpgid(pid)
        if group not in (0, 1, os.getpgrp()):
            os.killpg(group, signal.SIGKILL)  # the command and the children it started
        else:
            os.kill(pid, signal.SIGKILL)  # never our own group: the command alone
