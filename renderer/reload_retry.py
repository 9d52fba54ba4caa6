"""Telling nginx again: files checked and in place, but the reload failed or nginx was not running.

Retried with backoff until nginx reloads, or until its master turns out to have started after the
files were written (it read them at start: a reload would be needless).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from plumbing.errors import NginxNotRunning, NginxReloadFailed

from .metrics import SidecarMetrics
from .nginx import CommandNginx, Nginx, master_started_at, names_master

__all__ = ["NGINX_START_MARGIN", "RELOAD_RETRY_MAX", "ReloadRetry", "runs_files_written_at"]

log = logging.getLogger("renderer.daemon")  # split out of the daemon: its lines keep their logger name
RELOAD_RETRY_MAX = 30.0
# A master that started this long after the files were written has read them; the margin covers
# nginx reading its config before it forks the master (daemon on) and the clock tick of /proc.
NGINX_START_MARGIN = 1.0


class ReloadRetry:
    """At most one retry task at a time, for the newest files waiting for nginx."""

    def __init__(
        self,
        nginx: Callable[[], Nginx],
        metrics: SidecarMetrics,
        on_live: Callable[[bool], None],
    ) -> None:
        self.nginx = nginx  # the current runtime's nginx (SIGHUP may replace it meanwhile)
        self.metrics = metrics
        self.on_live = on_live  # nginx runs the files; True when we reloaded it, False when it restarted
        self.written_at: float | None = None  # CLOCK_BOOTTIME when the waiting files were written
        self._pending = False

    @property
    def pending(self) -> bool:
        """Whether files are in place that nginx has not been told about yet."""
        return self._pending

    def schedule(self, tg: asyncio.TaskGroup | None, written_at: float) -> None:
        """Retry the reload in ``tg`` (none: not running, nothing to retry in)."""
        self.written_at = written_at  # the newest files waiting for nginx
        if not self._pending and tg is not None:
            self._pending = True
            tg.create_task(self._run())

    async def _run(self) -> None:
        delay = 0.5
        try:
            while True:
                await asyncio.sleep(delay)
                if runs_files_written_at(self.nginx(), self.written_at):
                    self.on_live(False)
                    return
                try:
                    await self.nginx().reload()
                except NginxNotRunning as exc:
                    # nginx not started yet (the order operations.md recommends) is a state, not a
                    # failure: the round already said so at INFO; no warning, nothing counted.
                    log.debug("Still waiting for nginx: %s", exc)
                except NginxReloadFailed as exc:
                    self.metrics.reload_failures.inc()
                    log.warning("nginx reload still failing: %s", exc)
                else:
                    self.on_live(True)  # says "nginx reloaded." once
                    return
                delay = min(delay * 2, RELOAD_RETRY_MAX)
        finally:
            self._pending = False


def runs_files_written_at(nginx: Nginx, written_at: float | None) -> bool:
    """Whether nginx's master started after the waiting files were written, so it runs them.

    Its start time comes from /proc (the process itself, on the boot clock: no wall-clock jumps),
    not from the pid file's mtime, which a crash leaves behind and any tool may touch.
    """
    if not isinstance(nginx, CommandNginx) or nginx.config.pid_file is None:
        return False  # no master to ask: a reload is the safe choice
    # A stale pid file's stranger may have started after the write too: it runs no files.
    started = master_started_at(nginx.config.pid_file) if names_master(nginx.config.pid_file) else None
    if started is None or written_at is None:
        return False
    if started <= written_at + NGINX_START_MARGIN:
        return False
    log.debug(
        "nginx (from %s) started %.1fs after the files were written and runs them; no reload.",
        nginx.config.pid_file,
        started - written_at,
    )
    return True
