"""The companion daemon: one TaskGroup; engine events, the services directory, a timer and a probe of the
agent mark it dirty; one reconcile loop makes the agent match. The status endpoint runs in the same group;
READY=1 goes to systemd after the first successful reconcile.

Level-triggered: every reconcile lists the running containers and the service files again, so missed
events, a restart of the companion and containers killed while it was down all heal. When the engine is
away, the last listing stands (registrations are kept) and the reconcile is retried with backoff; the
daemon never exits because the engine or Consul is away. Cancellation stops it; with
``deregister_on_stop`` it first removes what it owns, bounded by ``stop_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from discovery.errors import ConsulError, ConsulUnavailable, EngineError, unwrap_group
from discovery.status import StatusServer
from discovery.systemd import notify

from .agent import Agent
from .config import RegistrarConfig
from .engine import CONNECTED, ContainerEvent, ContainerInfo, Engine, is_relevant
from .files import ServiceFiles
from .labels import services_for
from .metrics import RegistrarMetrics
from .plan import make_plan, owned_ids
from .runner import Runners
from .spec import ServiceSpec
from .state import RegistrarState

__all__ = ["Registrar"]

log = logging.getLogger(__name__)
DEATHS = frozenset({"die", "died", "stop", "destroy", "remove", "pause"})
BIRTHS = frozenset({"start", "restart", "unpause"})
# One more reconcile this long after the last event: an engine's list can lag its events (Docker still
# lists a container as paused just after its "unpause" event).
SETTLE = 0.5
BACKOFF_INITIAL = 0.2
BACKOFF_MAX = 10.0
AGENT_PROBE = 2.0  # seconds between looks at the agent (is it there; does it still hold our services?)


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter for the n-th consecutive failure (n >= 1)."""
    base = min(BACKOFF_MAX, BACKOFF_INITIAL * 2.0 ** (attempt - 1))
    return base * (0.5 + random.random() / 2)  # jitter, not cryptography


class Registrar:
    """Keeps one Consul agent's registrations equal to the running containers and the service files."""

    def __init__(
        self,
        config: RegistrarConfig,
        agent: Agent,
        engine: Engine | None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.env = dict(env or {})  # NOTIFY_SOCKET, passed in by the command line
        self.agent = agent
        self.engine = engine
        self.files = (
            ServiceFiles(config.services_dir, config.host.hostname, config.host.advertise_address)
            if config.services_dir
            else None
        )
        self.dirty = asyncio.Event()
        self.reconciled = 0  # completed reconciles, for tests and logs
        self._containers: tuple[ContainerInfo, ...] = ()
        self._warned: set[tuple[str, str]] = set()
        self._stream_error: str | None = None  # what the event loop last said about the engine
        self._runners: Runners | None = None
        self._refresh = True  # inspect every container again at the next reconcile
        # Containers whose death the engine announced: a listing made at once may still show them running.
        self._dead: set[str] = set()
        self._settle: asyncio.TimerHandle | None = None
        self.metrics = RegistrarMetrics()
        self.state = RegistrarState(consul=config.consul.address, engine=config.engine)
        self.ready = asyncio.Event()  # set after the first successful reconcile

    async def run(self) -> None:
        """Run until cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                if self.config.status is not None:
                    tg.create_task(self._status_server(self.config.status).serve(), name="status")
                self._runners = Runners(
                    self.agent,
                    self.engine,
                    tg.create_task,
                    self.config.check_output_limit,
                    self._reported,
                    runc=self.config.runc,
                )
                self.dirty.set()
                tg.create_task(self._reconcile_loop(), name="reconcile")
                tg.create_task(self._resync_loop(), name="resync")
                tg.create_task(self._probe_agent(), name="agent-probe")
                if self.engine is not None:
                    tg.create_task(self._event_loop(self.engine), name="engine-events")
                if self.config.services_dir is not None:
                    tg.create_task(self._watch_dir(self.config.services_dir), name="services-dir")
        except BaseExceptionGroup as group:
            raise unwrap_group(group) from None  # one sentence (a status port in use), not a tree
        finally:
            if self._settle is not None:
                self._settle.cancel()
            if self._runners is not None:
                self._runners.stop()
            if self.config.deregister_on_stop:
                await self._deregister_owned()

    # Triggers -----------------------------------------------------------------------------------------

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.resync)
            self._refresh = True
            self.dirty.set()

    async def _probe_agent(self) -> None:
        """Notice Consul going away, coming back, or coming back empty, and reconcile then.

        A restarted agent (a -dev one, or one that lost its data) forgets every registration, and nothing
        else would tell: no engine event comes, and the next resync may be minutes away.
        """
        while True:
            await asyncio.sleep(AGENT_PROBE)
            try:
                services = await self.agent.services()
                self.state.observe_checks(await self.agent.checks())  # fresh statuses for /status
            except ConsulError as exc:
                if self.state.consul_error is None:  # once per outage, not every probe
                    log.warning("%s Registrations are checked again when it answers.", exc)
                self.metrics.consul_errors.inc()
                self.metrics.consul_up.set(0)
                self.state.consul_error = str(exc)
                continue
            self.metrics.consul_up.set(1)
            on_agent = set(owned_ids(services, self.config.owner))
            if self.state.consul_error is not None or on_agent != set(self.state.owned):
                # DEBUG: a reconcile in progress also shows as a difference (harmless: one more pass).
                log.debug(
                    "The agent holds %d of the %d services this host owns; reconciling.",
                    len(on_agent & set(self.state.owned)),
                    len(self.state.owned),
                )
                self.dirty.set()

    async def _event_loop(self, engine: Engine) -> None:
        failures, connections = 0, 0
        while True:
            try:
                async for event in engine.events():
                    if event.action == CONNECTED:
                        connections += 1
                        if connections > 1:
                            self.metrics.engine_reconnects.inc()
                        self.state.engine_error = self._stream_error = None
                        self._refresh = True
                        if failures:
                            log.info("Reconnected to the container engine; reconciling.")
                        failures = 0
                    self._on_event(event)
                # The stream ended without an error (the engine stopped its API service cleanly): a lost
                # connection all the same, so the next CONNECTED is a reconnection and says so.
                failures += 1
            except EngineError as exc:
                failures += 1
                self.state.engine_error = self._stream_error = str(exc)
                if failures in (1, 2, 4) or failures % 20 == 0:
                    log.warning("%s Reconnecting (attempt %d).", exc, failures)
            await asyncio.sleep(backoff(max(failures, 1)))

    def _on_event(self, event: ContainerEvent) -> None:
        """Note deaths and births; reconcile now and once more after SETTLE; rerun a changed health check."""
        base = event.action.split(":", 1)[0]
        if base in DEATHS:
            self._dead.add(event.container_id)
        elif base in BIRTHS:
            self._dead.discard(event.container_id)
        if not is_relevant(event):
            return
        log.debug("Engine event %s for %s.", event.action, event.name or event.container_id[:12])
        self.dirty.set()
        if self._settle is not None:
            self._settle.cancel()
        self._settle = asyncio.get_running_loop().call_later(SETTLE, self.dirty.set)
        if event.action.startswith("health_status") and self._runners is not None:
            self._runners.poke(container_id=event.container_id)

    async def _watch_dir(self, directory: Path) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        loop = asyncio.get_running_loop()
        dirty = self.dirty

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type not in ("opened", "closed_no_write"):
                    loop.call_soon_threadsafe(dirty.set)

        observer = Observer()
        observer.schedule(Handler(), str(directory), recursive=False)
        observer.start()
        try:
            await asyncio.Event().wait()
        finally:
            observer.stop()
            await asyncio.to_thread(observer.join, 5)

    # Reconcile ----------------------------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        failures = 0
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            try:
                await self.reconcile()
            except (EngineError, ConsulError) as exc:
                self._failed(exc)
                failures += 1
                # The event loop already says the same engine error (e.g. its socket is missing) each
                # time it reconnects; saying it again here would double every line.
                repeated = isinstance(exc, EngineError) and str(exc) == self._stream_error
                if not repeated and (failures in (1, 2, 4) or failures % 20 == 0):
                    log.warning("%s Retrying (attempt %d).", exc, failures)
                await asyncio.sleep(backoff(failures))
                self.dirty.set()
            else:
                failures = 0
                self._mark_ready()

    async def reconcile(self) -> None:
        """Make the agent match the running containers and service files, once."""
        engine_error: EngineError | None = None
        if self.engine is not None:
            try:
                refresh, self._refresh = self._refresh, False
                self._containers = await self.engine.running(refresh=refresh)
                self.state.engine_error = None
            except EngineError as exc:
                engine_error = exc  # keep the last listing: the containers may well still run
                self.state.engine_error = str(exc)
                self._refresh = True
            self.metrics.watched_containers.set(len(self._containers))
        listed = {c.id for c in self._containers}
        self._dead &= listed
        desired = self._desired()
        services = await self.agent.services()
        plan = make_plan(desired, services, self.config.owner)
        for warning in plan.warnings:
            self._warn_once(warning)
        failed: set[str] = set(plan.skipped)
        for spec, body in plan.register:
            try:
                await self.agent.register(body)
            except ConsulUnavailable:
                raise
            except ConsulError as exc:
                self.metrics.consul_errors.inc()
                self._warn_once(f"{exc} ({spec.origin})")
                failed.add(spec.id)
            else:
                self.metrics.registrations.inc()
                log.info("Registered %s (%s).", spec.id, spec.origin)
        for sid in plan.deregister:
            await self.agent.deregister(sid)
            self.metrics.deregistrations.inc()
            log.info("Deregistered %s.", sid)
        active = [spec for spec in desired if spec.id not in failed]
        if self._runners is not None:
            self._runners.update(check for spec in active for check in spec.checks)
            self._runners.poke(check.check_id for spec, _ in plan.register for check in spec.checks)
        self.state.reconcile_done(active, await self.agent.checks())
        self.metrics.owned_services.set(len(active))
        self.metrics.reconciles.inc()
        self.reconciled += 1
        if plan:
            log.debug("Reconciled: %d registered, %d deregistered.", len(plan.register), len(plan.deregister))
        if engine_error is not None:
            raise engine_error

    def _desired(self) -> list[ServiceSpec]:
        desired: list[ServiceSpec] = []
        for container in self._containers:
            if container.id in self._dead:
                continue
            specs, warnings = services_for(container, self.config.host)
            for warning in warnings:
                self._warn_once(warning, key=container.id)
            desired.extend(specs)
        if self.files is not None:
            desired.extend(self.files.load())
        return desired

    # Health, metrics and readiness -------------------------------------------------------------------

    def _status_server(self, address: tuple[str, int]) -> StatusServer:
        return StatusServer(
            address, health=self.state.health, registry=self.metrics.registry, status=self.state.status
        )

    def _failed(self, exc: EngineError | ConsulError) -> None:
        self.metrics.reconcile_failures.inc()
        if isinstance(exc, ConsulError):
            self.metrics.consul_errors.inc()
            self.metrics.consul_up.set(0)
            self.state.consul_error = str(exc)
        else:  # the engine failed after Consul answered every call of the reconcile
            self._consul_answered()

    def _consul_answered(self) -> None:
        self.metrics.consul_up.set(1)
        self.state.consul_error = None

    def _mark_ready(self) -> None:
        self._consul_answered()
        self.state.reconciled = True
        if not self.ready.is_set():
            self.ready.set()
            self.metrics.ready.set(1)
            notify(self.env, "READY=1\nSTATUS=The first reconcile succeeded.")

    def _reported(self, check_id: str, status: str, delivered: bool) -> None:
        self.metrics.check_results.labels(status).inc()
        if delivered:
            self.state.results[check_id] = status
        else:
            self.metrics.consul_errors.inc()

    def _warn_once(self, message: str, key: str = "") -> None:
        if (key, message) not in self._warned:
            if len(self._warned) > 10_000:
                self._warned.clear()
            self._warned.add((key, message))
            log.warning("%s", message)

    async def _deregister_owned(self) -> None:
        """Deregister every service this host owns, giving up after ``stop_timeout``."""

        async def all_owned() -> int:
            services: dict[str, Any] = await self.agent.services()
            ids = owned_ids(services, self.config.owner)
            await asyncio.gather(*(self.agent.deregister(sid) for sid in ids))
            return len(ids)

        try:
            count = await asyncio.wait_for(all_owned(), self.config.stop_timeout)
            self.metrics.deregistrations.inc(count)
            log.info("Deregistered %d services on stop.", count)
        except (ConsulError, TimeoutError) as exc:
            # str(TimeoutError()) is empty: say what happened instead.
            log.warning(
                "Could not deregister on stop: %s",
                str(exc) or f"timed out after {self.config.stop_timeout:g}s",
            )
