"""The sidecar daemon: watch Consul, render on change, apply safely. One TaskGroup, stopped by cancel."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from discovery.acl import token_problem
from discovery.consul import ConsulClient
from discovery.duration import format_duration
from discovery.errors import (
    ConfigError,
    ConsulDenied,
    ConsulUnavailable,
    NginxCheckFailed,
    NginxError,
    NginxNotRunning,
    NginxReloadFailed,
    OutputError,
    unwrap_group,
)
from discovery.model import Dependency, ServiceQuery, Snapshot
from discovery.status import Health, StatusServer
from discovery.systemd import notify
from discovery.watch import Watcher

from .apply import Outcome, apply_renders
from .config import SidecarConfig, TemplateConfig, load_config
from .debounce import Quiescence
from .exclusion import Exclusion
from .left_out import LeftOut
from .metrics import SidecarMetrics
from .nginx import CommandNginx, Nginx, boot_clock, master_started_at
from .template import Rendered, TemplateSet

__all__ = ["Sidecar"]

log = logging.getLogger(__name__)
TEMPLATE_SETTLE = 0.05  # editors save in several steps; let them finish
RELOAD_RETRY_MAX = 30.0
TOKEN_RECHECK = 5.0
RECONNECT_SETTLE = 2.0  # seconds after Consul returns from an outage before its answers are rendered
EXCLUSION_ROUNDS = 16  # checks per round that may each leave out instances nginx rejected
# A master that started this long after the files were written has read them; the margin covers
# nginx reading its config before it forks the master (daemon on) and the clock tick of /proc.
NGINX_START_MARGIN = 1.0


class Sidecar:
    """Keeps the rendered files equal to what the templates make of Consul's current state."""

    def __init__(
        self,
        config: SidecarConfig,
        *,
        env: Mapping[str, str] | None = None,
        nginx: Nginx | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.env = dict(env or {})
        self.nginx: Nginx = nginx or CommandNginx(config.nginx)
        self.clock = clock
        self.templates = TemplateSet((t.source for t in config.templates), config.template_env)
        self.policy = Quiescence(config.wait.min, config.wait.max)
        self.applied = 0  # successful applies that reloaded nginx
        self.last_error: str | None = None
        self.failures: list[str] = []  # what the last complete round did not render or apply
        self.ready = asyncio.Event()  # set after the first complete, successful apply
        self.metrics = SidecarMetrics()
        self.token_problem: str | None = None  # a sentence while the ACL token cannot read services
        self._token_checked = False
        self._kick = asyncio.Event()
        self._templates_changed = False
        self._deps: dict[Path, frozenset[Dependency]] = {}
        self._watcher: Watcher | None = None
        self._reload_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tg: asyncio.TaskGroup | None = None
        self.dry_output: list[str] | None = None
        self._once = False
        self._refused: frozenset[tuple[Path, str]] = frozenset()
        self.left_out = LeftOut(self.metrics)  # instances nginx rejected, not rendered for now
        self._written_at: float | None = None  # CLOCK_BOOTTIME when files waiting for a reload were written

    # Running -------------------------------------------------------------------------------------

    async def run(self, *, once: bool = False, dry: bool = False) -> None:
        """Run until cancelled; ``once``: return after the first complete apply; ``dry``: keep the texts
        of the first complete render in ``dry_output`` instead of applying them (implies once)."""
        self.dry_output = [] if dry else None
        self._once = once or dry
        errors = self.templates.load()
        if errors:
            raise errors[0]
        self._loop = asyncio.get_running_loop()
        client = ConsulClient(self.config.consul)
        observer = None if self._once else self._watch_template_files()
        try:
            await self._run_tasks(client)
        except BaseExceptionGroup as group:
            raise unwrap_group(group) from None
        finally:
            if observer is not None:
                observer.stop()
                observer.join(timeout=5)
            await client.close()

    async def _run_tasks(self, client: ConsulClient) -> None:
        """The daemon's one TaskGroup: watcher, follower, token guard, status endpoint, main loop."""
        wait = format_duration(self.config.consul.block_query_wait)
        self._watcher = watcher = Watcher(client, wait=wait, metrics=self.metrics)
        self._discover()
        if self._once:
            # A refused token is final for a one-shot command: learn it before any query logs its own 403.
            await self._guard_token(client)
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            background = [tg.create_task(watcher.run()), tg.create_task(self._follow(watcher))]
            if not self._once:
                background.append(tg.create_task(self._guard_token(client)))
            if self.config.status.listen and not self._once:
                server = StatusServer(
                    self.config.status.listen,
                    health=self.health,
                    registry=self.metrics.registry,
                    status=self.status,
                )
                background.append(tg.create_task(server.serve()))
            await self._main(watcher)
            for task in background:
                task.cancel()
            self._tg = None

    async def _main(self, watcher: Watcher) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            if self.ready.is_set():
                await self._quiesce()
                await self._settle(watcher)
                if watcher.reachable is False:
                    continue  # no render while Consul is away; its return will wake us again
            if await self._round(watcher) and self._once:
                return

    async def _settle(self, watcher: Watcher) -> None:
        """Right after Consul returns from an outage, let it settle before trusting what it says.

        A restarted Consul can answer for a moment with an incomplete catalog (seen: a service with no
        instances for ~100 ms until anti-entropy re-synced). Rendering that would empty live upstreams.
        """
        if watcher.reconnected_at is None:
            return
        remaining = watcher.reconnected_at + RECONNECT_SETTLE - time.monotonic()
        if remaining > 0:
            log.info("Consul just came back; waiting %.1fs for it to settle before rendering.", remaining)
            await asyncio.sleep(remaining)

    async def _quiesce(self) -> None:
        """Hold a data change back until Consul has been quiet for wait.min (at most wait.max)."""
        while (delay := self.policy.delay(self.clock())) > 0:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation (SIGTERM).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._kick.wait()
            self._kick.clear()

    async def _round(self, watcher: Watcher) -> bool:
        """Render everything once and apply it if complete; True when complete (applied or refused)."""
        snapshot = watcher.updates.value or Snapshot()
        self.policy.fired(self.clock())
        if self._templates_changed:
            self._templates_changed = False
            for error in self.templates.load():
                self.metrics.template_errors.inc()
                self._fail(error, "Template not reloaded (the last good version stays in use)")
        self.left_out.refresh(snapshot)
        renders, errors = self.templates.render_all(self.left_out.visible(snapshot))
        for r in renders:
            self._deps[r.source] = r.dependencies
        watcher.want(frozenset().union(*self._deps.values()))
        missing = frozenset().union(*(r.missing for r in renders))
        if not self._token_checked or self.token_problem is not None:
            return False  # never render what an unreadable catalog looks like: empty upstreams
        if missing:
            # Never a half-empty render: wait for every dependency to answer once.
            log.debug(
                "Waiting for %d dependencies: %s", len(missing), ", ".join(sorted(map(str, missing))[:5])
            )
            return False
        # Reported only now: an incomplete round is rendered again, and `render` says each failure once.
        self.failures = []
        for error in errors:
            self.metrics.template_errors.inc()
            self._fail(error, "Template not rendered (its file keeps its last good content)")
        await self._apply_leaving_out(renders, snapshot)
        return True

    async def _apply_leaving_out(self, renders: list[Rendered], snapshot: Snapshot) -> None:
        """Apply; while nginx rejects lines written from instances, leave those out and try again."""
        for attempt in range(EXCLUSION_ROUNDS + 1):
            # The last attempt may not exclude more: its refusal is reported like any other.
            found = await self._apply(renders, snapshot, may_exclude=attempt < EXCLUSION_ROUNDS)
            if not found:
                return
            self.left_out.add(found)
            renders, _ = self.templates.render_all(self.left_out.visible(snapshot))

    async def _apply(
        self, renders: list[Rendered], snapshot: Snapshot, *, may_exclude: bool
    ) -> tuple[Exclusion, ...]:
        """Apply the renders; the instances to leave out when nginx rejected a line written from them."""
        if self.dry_output is not None:
            self.dry_output.extend(_dry_text(r, len(renders)) for r in renders)
            return ()
        by_source = {t.source: t for t in self.config.templates}
        pairs = [(by_source[r.source], r.text) for r in renders if r.source in by_source]
        candidate = frozenset((t.destination, text) for t, text in pairs)
        if candidate == self._refused:
            # nginx refused exactly these bytes already: writing them again would only put a known-bad
            # file on disk for another check. Wait for a change.
            log.debug("Render unchanged since nginx refused it; not checking it again.")
            return ()
        try:
            await self._write_check_reload(pairs)
        except NginxCheckFailed as exc:
            files = [(by_source[r.source].destination, r) for r in renders if r.source in by_source]
            found = self.left_out.find(str(exc), files, snapshot) if may_exclude else ()
            if found:
                return found  # not an error yet: the caller renders again without them
            self._refused = candidate
            self._fail(exc, "Kept the last good files")
        return ()

    async def _write_check_reload(self, pairs: list[tuple[TemplateConfig, str]]) -> None:
        """Apply the texts; every outcome but a refused check (raised) is dealt with here."""
        try:
            outcome = await apply_renders(pairs, self.nginx)
        except NginxNotRunning as exc:
            # The files passed the check and wait for nginx: that is a success for `render` run
            # before nginx starts, and readiness for systemd (nginx is ordered after us).
            log.info("%s The checked files are in place for when it starts.", exc)
            self._mark_ready()
            if not self._once:
                self._schedule_reload_retry(boot_clock())
            return
        except NginxReloadFailed as exc:
            self.metrics.reload_failures.inc()
            if self._once:
                self._fail(exc, "New files are in place but nginx did not reload")
                return
            self._fail(exc, "New files are in place but nginx did not reload; retrying")
            self._schedule_reload_retry(boot_clock())
            return
        except NginxCheckFailed:
            self.metrics.rollbacks.inc()
            self.metrics.check_failures.inc()
            raise
        except (NginxError, OutputError) as exc:
            self.metrics.rollbacks.inc()
            self._fail(exc, "Kept the last good files")
            return
        finally:
            self.metrics.renders.inc()
        self._refused = frozenset()
        if outcome is Outcome.RELOADED:
            self._reloaded()
        self.last_error = None
        self._mark_ready()

    def _reloaded(self) -> None:
        self.applied += 1
        self.metrics.reloads.inc()
        self.metrics.last_apply.set_to_current_time()
        log.info("nginx reloaded.")

    def _mark_ready(self) -> None:
        if not self.ready.is_set():
            self.ready.set()
            self.metrics.ready.set(1)
            notify(self.env, "READY=1\nSTATUS=The first complete render is live.")

    def _fail(self, exc: Exception, what: str) -> None:
        self.last_error = str(exc)
        self.failures.append(f"{what}: {exc}")
        if not self._once:
            log.error("%s: %s", what, exc)  # a one-shot command prints its failures itself, once

    def _discover(self) -> None:
        """Learn what the templates read, from a render against an empty snapshot."""
        renders, _ = self.templates.render_all(Snapshot())
        assert self._watcher is not None
        self._deps = {r.source: r.dependencies for r in renders}
        self._watcher.want(frozenset().union(*self._deps.values()))

    async def _follow(self, watcher: Watcher) -> None:
        version, previous = 0, Snapshot()
        while True:
            version, snapshot = await watcher.updates.wait_newer(version)
            _log_changes(previous, snapshot)
            previous = snapshot
            self.policy.change(self.clock())
            self._kick.set()

    # ACL token, health and status ---------------------------------------------------------------

    async def _guard_token(self, client: ConsulClient) -> None:
        """Check the token before the first render, and keep checking while it is refused."""
        reported = None
        while True:
            try:
                problem = await token_problem(client)
            except ConsulUnavailable:
                await asyncio.sleep(TOKEN_RECHECK)  # the watcher reports Consul's absence itself
                continue
            if problem is None:
                self.token_problem, self._token_checked = None, True
                self._kick.set()  # rounds were skipped until now
                return
            self.token_problem = problem
            if self._once:
                raise ConsulDenied(problem)  # a one-shot command cannot wait for a token to be fixed
            if problem != reported:
                log.error("Not rendering: %s", problem)
                reported = problem
            await asyncio.sleep(TOKEN_RECHECK)

    def health(self) -> Health:
        """Healthy when Consul answers, the token is usable and the last apply succeeded."""
        watcher = self._watcher
        if self.token_problem is not None:
            return Health(False, self.token_problem)  # first: a refused token also makes every query fail
        if watcher is not None and watcher.reachable is False:
            return Health(False, f"Consul is unreachable: {watcher.last_error}")
        if self.last_error is not None:
            return Health(False, f"The last change was not applied: {self.last_error}")
        if not self.ready.is_set():
            return Health(False, "Waiting for the first complete render.")
        return Health(True, "", {"reloads": self.applied})

    def status(self) -> dict[str, Any]:
        """What the sidecar sees: every watched service with its instances and their health."""
        snapshot = (self._watcher.updates.value if self._watcher else None) or Snapshot()
        services = {
            str(query): [
                {"id": i.id, "address": i.address, "port": i.port, "node": i.node, "status": i.status}
                for i in instances
            ]
            for query, instances in snapshot.services
        }
        health = self.health()
        return {
            "healthy": health.ok,
            "reason": health.reason,
            "consul": self.config.consul.address,
            "reloads": self.applied,
            "services": services,
            "templates": [str(t.source) for t in self.config.templates],
            "excluded": self.left_out.describe(),
        }

    # Reload retries ------------------------------------------------------------------------------

    def _schedule_reload_retry(self, written_at: float) -> None:
        self._written_at = written_at  # the newest files waiting for nginx
        if not self._reload_pending and self._tg is not None:
            self._reload_pending = True
            self._tg.create_task(self._retry_reload())

    async def _retry_reload(self) -> None:
        delay = 0.5
        try:
            while True:
                await asyncio.sleep(delay)
                if self._nginx_started_since_written():
                    self.last_error = None
                    self._mark_ready()
                    return
                try:
                    await self.nginx.reload()
                except NginxReloadFailed as exc:
                    self.metrics.reload_failures.inc()
                    log.warning("nginx reload still failing: %s", exc)
                    delay = min(delay * 2, RELOAD_RETRY_MAX)
                    continue
                log.info("nginx reloaded after a failed attempt.")
                self._reloaded()
                self.last_error = None
                self._mark_ready()
                return
        finally:
            self._reload_pending = False

    def _nginx_started_since_written(self) -> bool:
        """Whether nginx's master started after the waiting files were written, so it runs them.

        Its start time comes from /proc (the process itself, on the boot clock: no wall-clock jumps),
        not from the pid file's mtime, which a crash leaves behind and any tool may touch.
        """
        nginx = self.nginx
        if not isinstance(nginx, CommandNginx) or nginx.config.pid_file is None:
            return False  # no master to ask: a reload is the safe choice
        started = master_started_at(nginx.config.pid_file)
        if started is None or self._written_at is None:
            return False
        if started <= self._written_at + NGINX_START_MARGIN:
            return False
        log.debug(
            "nginx (from %s) started %.1fs after the files were written and runs them; no reload.",
            nginx.config.pid_file,
            started - self._written_at,
        )
        return True

    # Template files and SIGHUP -------------------------------------------------------------------

    def _watch_template_files(self) -> Any:
        sidecar = self
        ignored = {t.destination for t in self.config.templates}
        sources = {t.source for t in self.config.templates}
        # Imported or included templates live beside the sources with the same kind of name; other
        # files there (logs, rendered output) must not trigger renders, or a log line would loop.
        suffixes = {t.source.suffix for t in self.config.templates if t.source.suffix} | {
            ".j2",
            ".jinja",
            ".jinja2",
        }

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                paths = {
                    Path(str(event.src_path)),
                    Path(str(getattr(event, "dest_path", "") or event.src_path)),
                }
                relevant = [p for p in paths if _is_template(p, sources, suffixes) and p not in ignored]
                if relevant and sidecar._loop is not None:
                    sidecar._loop.call_soon_threadsafe(sidecar._template_edited)

        observer = Observer()
        for folder in sorted({t.source.parent for t in self.config.templates}):
            observer.schedule(Handler(), str(folder), recursive=False)
        observer.daemon = True
        observer.start()
        return observer

    def _template_edited(self) -> None:
        self._refused = frozenset()  # an edit is a reason to try again
        self.left_out.clear()  # the edit may write those instances differently
        if not self._templates_changed:
            log.info("Template files changed; loading and rendering them again.")
            self._templates_changed = True
            assert self._loop is not None
            self._loop.call_later(TEMPLATE_SETTLE, self._kick.set)

    def reload_config(self) -> None:
        """SIGHUP: read the config and templates again; keep everything as it is if they are invalid."""
        try:
            new = load_config(self.config.path, self.env)
        except ConfigError as exc:
            log.error("Config not reloaded (still running with the previous one): %s", exc)
            return
        templates = TemplateSet((t.source for t in new.templates), new.template_env)
        errors = templates.load()
        if errors:
            log.error("Config not reloaded (still running with the previous one): %s", errors[0])
            return
        if new.consul != self.config.consul:
            log.warning("The [consul] settings changed; they take effect at the next restart.")
            new = _replace_consul(new, self.config)
        self.config, self.templates = new, templates
        self.policy = Quiescence(new.wait.min, new.wait.max)
        if isinstance(self.nginx, CommandNginx):
            self.nginx = CommandNginx(new.nginx)
        self._deps = {}
        self._refused = frozenset()  # SIGHUP after fixing nginx: check the same render again
        self.left_out.clear()  # ... and every instance it left out (say, after a DNS fix)
        log.info("Config reloaded from %s (%d templates).", new.path, len(new.templates))
        self._kick.set()


def _replace_consul(new: SidecarConfig, old: SidecarConfig) -> SidecarConfig:
    return dataclasses.replace(new, consul=old.consul)


def _dry_text(render: Rendered, count: int) -> str:
    # Several templates: say which text is which; one template: exactly its text.
    return render.text if count == 1 else f"# --- {render.source} ---\n{render.text}"


def _is_template(path: Path, sources: set[Path], suffixes: set[str]) -> bool:
    """A template source, or a file a template may import (same suffix), but not our temp files."""
    if path in sources:
        return True
    return path.suffix in suffixes and not path.name.startswith(".")


def _log_changes(old: Snapshot, new: Snapshot) -> None:
    before = dict(old.services)
    for query, instances in new.services:
        if before.get(query) != instances:
            _log_service(query, instances)


def _log_service(query: ServiceQuery, instances: tuple[Any, ...]) -> None:
    passing = sum(1 for i in instances if i.status == "passing")
    log.info("Service %s changed: %d instances, %d passing.", query, len(instances), passing)
