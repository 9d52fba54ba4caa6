"""Talking to nginx: check a config, reload it. A Protocol, so the pipeline's tests can count calls."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from discovery.errors import NginxCheckFailed, NginxError, NginxNotRunning, NginxReloadFailed

from .config import NginxConfig

__all__ = ["CommandNginx", "Nginx", "boot_clock", "master_started_at"]

log = logging.getLogger(__name__)
COMMAND_TIMEOUT = 60.0
MAX_OUTPUT = 4000
_NOTICE = re.compile(r"\[(?:warn|notice|info)\]")


class Nginx(Protocol):
    """What the apply pipeline needs from nginx."""

    async def check(self) -> None:
        """Raise NginxCheckFailed (with nginx's own words) if the files on disk are not a valid config."""

    async def reload(self) -> None:
        """Raise NginxReloadFailed if nginx could not be told to reload."""


class CommandNginx:
    """nginx driven by its check command and by SIGHUP to its master (or a reload command)."""

    def __init__(self, config: NginxConfig) -> None:
        self.config = config
        self.reloads = 0

    async def check(self) -> None:
        """Run the check command; its failure output goes into the error."""
        code, output = await _run(self.config.check_command)
        if code != 0:
            raise NginxCheckFailed(
                f"nginx rejected the new config ({' '.join(self.config.check_command)} exited {code}): "
                f"{_one_line(output)}"
            )

    async def reload(self) -> None:
        """Signal the master with SIGHUP, or run the reload command."""
        if self.config.reload_command:
            code, output = await _run(self.config.reload_command)
            if code != 0:
                raise NginxReloadFailed(
                    f"The reload command {' '.join(self.config.reload_command)} exited {code}: {_one_line(output)}"
                )
        else:
            assert self.config.pid_file is not None
            _signal_master(self.config.pid_file)
        self.reloads += 1


def _signal_master(pid_file: Path) -> None:
    pid = _read_pid(pid_file)
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise NginxNotRunning(f"nginx is not running: no process {pid} from pid file {pid_file}.") from None
    except PermissionError:
        raise NginxReloadFailed(f"Not allowed to signal nginx (pid {pid} from {pid_file}).") from None


def _read_pid(pid_file: Path) -> int:
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError as exc:
        raise NginxNotRunning(f"nginx is not running: its pid file {pid_file} does not exist.") from exc
    except OSError as exc:
        raise NginxReloadFailed(f"Cannot read nginx's pid file {pid_file}: {exc.strerror or exc}.") from exc
    if not text:
        # nginx leaves an empty pid file behind when it stops in some ways (and `nginx -t` may create one).
        raise NginxNotRunning(f"nginx is not running: its pid file {pid_file} is empty.")
    if not text.isdigit() or int(text) <= 1:
        raise NginxReloadFailed(f"nginx's pid file {pid_file} does not hold a process id.")
    return int(text)


def boot_clock() -> float:
    """Seconds since boot, suspend included: the clock /proc gives process start times in."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def master_started_at(pid_file: Path) -> float | None:
    """When the process the pid file names started, on ``boot_clock()``; None when it cannot be told."""
    try:
        pid = _read_pid(pid_file)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (NginxError, OSError):
        return None
    # Field 2 (the name) is in parentheses and may hold spaces: count fields after the last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or not fields[19].isdigit():
        return None
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time in clock ticks


async def _run(argv: Sequence[str]) -> tuple[int, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as exc:
        return 127, f"cannot run {argv[0]}: {exc.strerror or exc}"
    try:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation (SIGTERM).
        async with asyncio.timeout(COMMAND_TIMEOUT):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return 124, f"{argv[0]} did not finish within {COMMAND_TIMEOUT:g}s"
    except asyncio.CancelledError:
        # Stopping mid-check: do not leave the child behind.
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return proc.returncode or 0, out.decode("utf-8", "replace")[-MAX_OUTPUT:]


def _one_line(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    # Warnings come first and say nothing about the failure: skip them, or the reason is cut off.
    lines = [line for line in lines if not _NOTICE.search(line)] or lines
    # nginx's last lines say "test failed"; the first says why.
    return " / ".join(lines[:2]) if lines else "no output"
