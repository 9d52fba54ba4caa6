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
from collections.abc import Mapping

import tenacity

from plumbing.errors import ConsulError, ConsulUnavailable, EngineError, unwrap_group
from plumbing.logs import worth_logging
from plumbing.status import StatusServer
from plumbing.systemd import notify

from .agent import Agent
from .config import RegistrarConfig
from .engine import ContainerInfo, Engine
from .engine_events import EngineEvents
from .files import ServiceFiles
from .labels import services_for
from .metrics import RegistrarMetrics
from .plan import Plan, make_plan, owned_ids
from .retry import LOG_EVERY, retrying
from .runner import Runners
from .spec import ServiceSpec
from .state import RegistrarState
from .stop import deregister_owned
from .watch_dir import watch_dir

__all__ = ["Registrar"]

log = logging.getLogger(__name__)
AGENT_PROBE = 2.0  # seconds between looks at the agent (is it there; does it still hold our services?)


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
        self._runners: Runners | None = None
        self._refresh = True  # inspect every container again at the next reconcile
        self.metrics = RegistrarMetrics()
        self.state = RegistrarState(consul=config.consul.address, engine=config.engine)
        self.events = EngineEvents(
            self.dirty, self.state, self.metrics, reconnected=self._inspect_again, health_changed=self._rerun
        )
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
                    tg.create_task(self.events.follow(self.engine), name="engine-events")
                if self.config.services_dir is not None:
                    tg.create_task(watch_dir(self.config.services_dir, self.dirty.set), name="services-dir")
        except BaseExceptionGroup as group:
            raise unwrap_group(group) from None  # one sentence (a status port in use), not a tree
        finally:
            self.events.stop()
            if self._runners is not None:
                self._runners.stop()
            if self.config.deregister_on_stop:
                await deregister_owned(self.agent, self.config.owner, self.config.stop_timeout, self.metrics)

    # Triggers -----------------------------------------------------------------------------------------

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.resync)
            self._inspect_again()
            self.dirty.set()

    def _inspect_again(self) -> None:
        self._refresh = True

    def _rerun(self, container_id: str) -> None:
        """A container's own health changed: run its checks now, not at their next interval."""
        if self._runners is not None:
            self._runners.poke(container_id=container_id)

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

    # Reconcile ----------------------------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        while True:
            await self.dirty.wait()
            async for attempt in retrying((EngineError, ConsulError), self._reconcile_failed):
                with attempt:
                    self.dirty.clear()  # a change from here on is seen by this pass or marks the next
                    await self.reconcile()
            self._mark_ready()

    def _reconcile_failed(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if not isinstance(exc, EngineError | ConsulError):
            return
        self._failed(exc)
        # The event loop already says the same engine error (e.g. its socket is missing) each time it
        # reconnects; saying it again here would double every line.
        repeated = isinstance(exc, EngineError) and str(exc) == self.events.stream_error
        if not repeated and worth_logging(state.attempt_number, LOG_EVERY):
            log.warning("%s Retrying (attempt %d).", exc, state.attempt_number)

    async def reconcile(self) -> None:
        """Make the agent match the running containers and service files, once."""
        engine_error = await self._list_containers()
        desired = self._desired()
        plan = make_plan(desired, await self.agent.services(), self.config.owner)
        for warning in plan.warnings:
            self._warn_once(warning)
        failed = set(plan.skipped) | await self._register(plan)
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

    async def _list_containers(self) -> EngineError | None:
        """List the running containers; when the engine fails, keep the last listing and return why."""
        if self.engine is None:
            return None
        # Deaths alone since the last listing: it, less the dead, is the truth for now. Not while a
        # refresh is due: that is also the state before the first listing and after a failed one.
        if not self.events.listing_needed() and not self._refresh:
            return None
        engine_error: EngineError | None = None
        try:
            refresh, self._refresh = self._refresh, False
            self._containers = await self.engine.running(refresh=refresh)
            self.state.engine_error = None
        except EngineError as exc:
            engine_error = exc  # keep the last listing: the containers may well still run
            self.state.engine_error = str(exc)
            self._refresh = True
        self.metrics.watched_containers.set(len(self._containers))
        self.events.dead &= {c.id for c in self._containers}
        return engine_error

    async def _register(self, plan: Plan) -> set[str]:
        """Register what the plan says; return the IDs the agent refused (Consul being away raises)."""
        failed: set[str] = set()
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
        return failed

    def _desired(self) -> list[ServiceSpec]:
        desired: list[ServiceSpec] = []
        for container in self._containers:
            if container.id in self.events.dead:
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
