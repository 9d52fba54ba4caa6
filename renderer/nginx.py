"""Talking to nginx: check a config, reload it. A Protocol, so the pipeline's tests can count calls."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from plumbing.errors import NginxCheckFailed, NginxError, NginxNotRunning, NginxReloadFailed

from .config import NginxConfig

__all__ = ["CommandNginx", "Nginx", "boot_clock", "is_nginx_master", "master_started_at", "missing_programs"]

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
    """SIGHUP to the pid in ``pid_file``, once that pid is proven to be an nginx master."""
    pid = _read_pid(pid_file)
    gone = f"nginx is not running: no process {pid} from pid file {pid_file}."
    try:
        # A pidfd pins the process: if it exits and its pid is reused between the check and the
        # signal, the signal fails (ESRCH) instead of reaching the newcomer.
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise NginxNotRunning(gone) from None
    try:
        name, master = _identify(pid)
        if not master:
            # A stale pid file (nginx died, its pid reused) or a wrong path: never signal a stranger.
            raise NginxNotRunning(
                f"{pid_file} names pid {pid} ({name}), which is not an nginx master; not signalling it."
            )
        signal.pidfd_send_signal(fd, signal.SIGHUP)
    except ProcessLookupError:
        raise NginxNotRunning(gone) from None
    except PermissionError:
        raise NginxReloadFailed(f"Not allowed to signal nginx (pid {pid} from {pid_file}).") from None
    finally:
        os.close(fd)


def _identify(pid: int) -> tuple[str, bool]:
    """The process's name, and whether it is an nginx master; ProcessLookupError if it is gone."""
    proc = Path(f"/proc/{pid}")
    try:
        name = (proc / "comm").read_text().strip()
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    try:
        exe: str | None = os.readlink(proc / "exe")
    except OSError:
        exe = None  # another user's process (nginx's master runs as root): its cmdline still tells
    return name, is_nginx_master(cmdline, exe)


def is_nginx_master(cmdline: str, exe: str | None) -> bool:
    """Whether a process with this command line (NULs as spaces) and executable is an nginx master."""
    if cmdline.startswith("nginx: "):
        # nginx retitles its processes: "nginx: master process ...", "nginx: worker process", ...
        return cmdline.startswith("nginx: master process")
    # With `master_process off` the one process keeps its argv (and handles SIGHUP itself).
    program = exe if exe is not None else cmdline.split(" ", 1)[0]
    return Path(program).name.startswith("nginx")


def missing_programs(config: NginxConfig, search_path: str) -> list[str]:
    """What is wrong with each command (check_command, reload_command) whose program cannot be run."""
    commands = {"check_command": config.check_command, "reload_command": config.reload_command}
    return [
        # A path is used as it is; a bare name is looked up on PATH, as exec does.
        f"{key}'s program '{argv[0]}' "
        + ("is not an executable file" if "/" in argv[0] else "is not found on PATH")
        for key, argv in commands.items()
        if argv and shutil.which(argv[0], path=search_path) is None
    ]


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


def names_master(pid_file: Path) -> bool:
    """Whether the pid file names a live nginx master (a stale one, naming a stranger, does not)."""
    try:
        return _identify(_read_pid(pid_file))[1]
    except (NginxError, OSError):
        return False


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
