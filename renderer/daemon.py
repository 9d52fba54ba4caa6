"""The sidecar daemon: watch Consul, render on change, apply safely. One TaskGroup, stopped by cancel.

This module only wires the pieces and carries out what they decide:

* ``round``       the pure round: render, what the templates need, what to do (``decide_round``)
* ``applier``     carrying out a complete round: apply, leave out rejected instances, act on the verdict
* ``outcome``     what an apply's result means (``judge``)
* ``state``       health, status and the failures a one-shot command prints
* ``token_guard`` no render before the ACL token is known to read services
* ``reload_retry`` telling nginx again after a failed reload
* ``runtime``     config, templates, policy and nginx control, swapped as one value on SIGHUP
* ``template_watch`` the template folders, watched from a task in the daemon's TaskGroup
* ``quiescence``  waiting for Consul to be quiet (wait.min / wait.max), and to settle after an outage
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from discovery.client import ConsulClient
from discovery.model import Dependency, Snapshot
from discovery.watch import Watcher
from plumbing.duration import format_duration
from plumbing.errors import ConfigError, TemplateError, unwrap_group
from plumbing.status import Health, StatusServer

from .applier import EXCLUSION_ROUNDS, Applier, files_of
from .config import SidecarConfig
from .left_out import LeftOut
from .metrics import SidecarMetrics
from .nginx import Nginx
from .quiescence import quiesce, settle
from .reload_retry import NGINX_START_MARGIN
from .round import Action, RenderSet, RoundInput, changed_services, decide_round, needs, render_round, watched
from .runtime import Runtime, reload_runtime, start_runtime
from .state import SidecarState
from .template_watch import watch_template_files
from .token_guard import TokenGuard

__all__ = ["EXCLUSION_ROUNDS", "NGINX_START_MARGIN", "Sidecar"]

log = logging.getLogger(__name__)
TEMPLATE_SETTLE = 0.05  # editors save in several steps; let them finish
LOG_EACH = 10  # changed services logged one per line; more (a first read of thousands) are one line


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
        self.env = dict(env or {})
        self.runtime: Runtime = start_runtime(config, nginx)  # replaced as a whole on SIGHUP
        self.clock = clock
        self.metrics = SidecarMetrics()
        self.state = SidecarState(consul=config.consul.address)
        self.left_out = LeftOut(self.metrics)  # instances nginx rejected, not rendered for now
        self.applier = Applier(
            state=self.state,
            metrics=self.metrics,
            left_out=self.left_out,
            runtime=lambda: self.runtime,
            task_group=lambda: self._tg,
            env=self.env,
        )
        self._once = False
        self._kick = asyncio.Event()
        self._templates_changed = False
        self._deps: dict[Path, frozenset[Dependency]] = {}
        self._watcher: Watcher | None = None
        self._guard: TokenGuard | None = None
        self._tg: asyncio.TaskGroup | None = None

    @property
    def config(self) -> SidecarConfig:
        """The config in use (the newest valid one since SIGHUP)."""
        return self.runtime.config

    @property
    def last_error(self) -> str | None:
        """Why the last change was not applied, or None."""
        return self.state.last_error

    @property
    def failures(self) -> list[str]:
        """What the last complete round did not render or apply (a one-shot command prints them)."""
        return self.state.failures

    @property
    def dry_output(self) -> list[str] | None:
        """A dry run's texts (None unless ``run(dry=True)``)."""
        return self.applier.dry_output

    # Running -------------------------------------------------------------------------------------

    async def run(self, *, once: bool = False, dry: bool = False) -> None:
        """Run until cancelled; ``once``: return after the first complete apply; ``dry``: keep the texts
        of the first complete render in ``dry_output`` instead of applying them (implies once)."""
        self.applier.dry_output = [] if dry else None
        self._once = self.applier.once = once or dry
        errors = self.runtime.templates.load()
        if errors:
            raise errors[0]
        client = ConsulClient(self.config.consul)
        try:
            await self._run_tasks(client)
        except BaseExceptionGroup as group:
            raise unwrap_group(group) from None
        finally:
            await client.close()
            await self.applier.close()

    async def _run_tasks(self, client: ConsulClient) -> None:
        """The daemon's one TaskGroup: watcher, follower, token guard, template watch, status, main loop."""
        wait = format_duration(self.config.consul.block_query_wait)
        self._watcher = watcher = Watcher(client, wait=wait, metrics=self.metrics)
        self._guard = guard = TokenGuard(client, once=self._once, on_usable=self._kick.set)
        self._discover(watcher)
        if self._once:
            # A refused token is final for a one-shot command: learn it before any query logs its own 403.
            await guard.run()
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            watcher.start(tg)
            background = [tg.create_task(self._follow(watcher)), *self._daemon_tasks(tg, guard)]
            await self._main(watcher)
            watcher.stop()
            for task in background:
                task.cancel()
            self._tg = None

    def _daemon_tasks(self, tg: asyncio.TaskGroup, guard: TokenGuard) -> list[asyncio.Task[None]]:
        """What only a long-running sidecar does: guard the token, watch templates, serve status."""
        if self._once:
            return []
        tasks = [
            tg.create_task(guard.run()),
            tg.create_task(watch_template_files(self.config.templates, self._template_edited)),
            # Runtime state re-synced after reloads and checked for drift (idle while dynamic is off).
            tg.create_task(self.applier.pusher.run()),
        ]
        if self.config.status.listen:
            server = StatusServer(
                self.config.status.listen,
                health=self.health,
                registry=self.metrics.registry,
                status=self.status,
            )
            tasks.append(tg.create_task(server.serve()))
        return tasks

    async def _main(self, watcher: Watcher) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            if self.state.ready:
                await quiesce(lambda: self.runtime.policy, self.clock, self._kick)
                await settle(watcher.reconnected_at)
                if watcher.reachable is False:
                    continue  # no render while Consul is away; its return will wake us again
            if await self._round(watcher) and self._once:
                return

    # One round -----------------------------------------------------------------------------------

    async def _round(self, watcher: Watcher) -> bool:
        """Render everything once and apply it if complete; True when complete (applied or refused)."""
        rt = self.runtime
        snapshot = watcher.updates.value or Snapshot()
        rt.policy.fired(self.clock())
        self._load_edited_templates(rt)
        self.left_out.refresh(snapshot)
        rendered = render_round(rt.templates, self.left_out.visible(snapshot))
        self._deps = needs(self._deps, rendered.renders)
        watcher.want(watched(self._deps))  # the round's only output upstream, before it decides
        decision = decide_round(self._round_input(rt, rendered))
        if decision.action is Action.WAIT_DATA:
            # Never a half-empty render: wait for every dependency to answer once.
            missing = sorted(map(str, decision.missing))
            log.debug("Waiting for %d dependencies: %s", len(missing), ", ".join(missing[:5]))
        if not decision.complete:
            return False
        # Reported only now: an incomplete round is rendered again, and `render` says each failure once.
        self.state.failures = []
        for error in rendered.errors:
            self.metrics.template_errors.inc()
            self.applier.fail(error, "Template not rendered (its file keeps its last good content)")
        await self.applier.apply(rt, list(rendered.renders), snapshot)
        return True

    def _round_input(self, rt: Runtime, rendered: RenderSet) -> RoundInput:
        guard = self._guard
        return RoundInput(
            token_checked=guard is not None and guard.checked,
            token_problem=guard.problem if guard is not None else None,
            missing=rendered.missing,
            files=files_of(rt, rendered.renders),
            refused=self.applier.refused,
            dry=self.dry_output is not None,
        )

    def _load_edited_templates(self, rt: Runtime) -> None:
        if self._templates_changed:
            self._templates_changed = False
            for error in rt.templates.load():
                self.metrics.template_errors.inc()
                self.applier.fail(error, "Template not reloaded (the last good version stays in use)")

    def _discover(self, watcher: Watcher) -> None:
        """The first round's needs: what the templates read, from a render against an empty snapshot."""
        renders, _ = self.runtime.templates.render_all(Snapshot())
        self._deps = needs({}, renders)
        watcher.want(watched(self._deps))

    async def _follow(self, watcher: Watcher) -> None:
        version, previous = 0, Snapshot()
        while True:
            version, snapshot = await watcher.updates.wait_newer(version)
            _log_changes(changed_services(previous, snapshot))
            previous = snapshot
            self.runtime.policy.change(self.clock())
            self._kick.set()

    # Health and status ---------------------------------------------------------------------------

    def health(self) -> Health:
        """Healthy when Consul answers, the token is usable and the last apply succeeded."""
        watcher = self._watcher
        health = self.state.health(
            token_problem=self._guard.problem if self._guard is not None else None,
            reachable=watcher.reachable if watcher is not None else None,
            consul_error=watcher.last_error if watcher is not None else None,
        )
        if health.ok and watcher is not None and watcher.away:
            # A remote datacenter away is no reason to restart us: healthy, and the reason says which.
            away = " ".join(o.sentence() for _, o in sorted(watcher.away.items()))
            return dataclasses.replace(health, reason=away)
        return health

    def status(self) -> dict[str, Any]:
        """What the sidecar sees: every watched service with its instances and their health."""
        snapshot = (self._watcher.updates.value if self._watcher else None) or Snapshot()
        templates = (str(t.source) for t in self.config.templates)
        doc = self.state.status(self.health(), snapshot, templates, self.left_out.describe())
        watcher = self._watcher
        doc["datacenters_away"] = {dc: o.as_dict() for dc, o in watcher.away.items()} if watcher else {}
        doc["rendered_empty"] = sorted(map(str, watcher.stand_ins)) if watcher else []
        doc["dynamic"] = self.applier.dynamic_status()
        return doc

    # Template files and SIGHUP -------------------------------------------------------------------

    def _template_edited(self) -> None:
        self.applier.refused = ()  # an edit is a reason to try again
        self.left_out.clear()  # the edit may write those instances differently
        if not self._templates_changed:
            log.info("Template files changed; loading and rendering them again.")
            self._templates_changed = True
            asyncio.get_running_loop().call_later(TEMPLATE_SETTLE, self._kick.set)

    def reload_config(self) -> None:
        """SIGHUP: read the config and templates again; keep everything as it is if they are invalid."""
        try:
            runtime = reload_runtime(self.runtime, self.env)
        except (ConfigError, TemplateError) as exc:
            log.error("Config not reloaded (still running with the previous one): %s", exc)
            return
        self.runtime = runtime
        self._deps = {}
        self.applier.refused = ()  # SIGHUP after fixing nginx: check the same render again
        self.left_out.clear()  # ... and every instance it left out (say, after a DNS fix)
        log.info(
            "Config reloaded from %s (%d templates).", runtime.config.path, len(runtime.config.templates)
        )
        self._kick.set()


def _log_changes(changes: list[tuple[Any, int, int]]) -> None:
    """One line per changed service; past ``LOG_EACH`` (a first read, a datacenter back), one in all."""
    level = logging.INFO if len(changes) <= LOG_EACH else logging.DEBUG
    for query, count, passing in changes:
        log.log(level, "Service %s changed: %d instances, %d passing.", query, count, passing)
    if level == logging.DEBUG:
        count, passing = sum(c for _, c, _ in changes), sum(p for _, _, p in changes)
        log.info("%d services changed: %d instances, %d passing.", len(changes), count, passing)
