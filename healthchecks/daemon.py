"""The companion daemon: one TaskGroup; engine events, the services directory and a timer mark it dirty;
one reconcile loop makes the agent match.

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
from pathlib import Path
from typing import Any

from discovery.containers import CONNECTED, ContainerInfo, Engine, is_relevant
from discovery.errors import ConsulError, ConsulUnavailable, EngineError

from .agent import Agent
from .config import RegistrarConfig
from .files import ServiceFiles
from .labels import services_for
from .plan import make_plan, owned_ids
from .runner import Runners
from .spec import ServiceSpec

__all__ = ["Registrar"]

log = logging.getLogger(__name__)
DEATHS = frozenset({"die", "died", "stop", "destroy", "remove", "pause"})
BIRTHS = frozenset({"start", "restart", "unpause"})
# One more reconcile this long after the last event: an engine's list can lag its events (Docker still
# lists a container as paused just after its "unpause" event).
SETTLE = 0.5
BACKOFF_INITIAL = 0.2
BACKOFF_MAX = 10.0


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter for the n-th consecutive failure (n >= 1)."""
    base = min(BACKOFF_MAX, BACKOFF_INITIAL * 2.0 ** (attempt - 1))
    return base * (0.5 + random.random() / 2)  # jitter, not cryptography


class Registrar:
    """Keeps one Consul agent's registrations equal to the running containers and the service files."""

    def __init__(self, config: RegistrarConfig, agent: Agent, engine: Engine | None) -> None:
        self.config = config
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
        # Containers whose death the engine announced: a listing made at once may still show them running.
        self._dead: set[str] = set()
        self._settle: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        """Run until cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._runners = Runners(
                    self.agent, self.engine, tg.create_task, self.config.check_output_limit
                )
                self.dirty.set()
                tg.create_task(self._reconcile_loop(), name="reconcile")
                tg.create_task(self._resync_loop(), name="resync")
                if self.engine is not None:
                    tg.create_task(self._event_loop(self.engine), name="engine-events")
                if self.config.services_dir is not None:
                    tg.create_task(self._watch_dir(self.config.services_dir), name="services-dir")
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

    async def _event_loop(self, engine: Engine) -> None:
        failures = 0
        while True:
            try:
                async for event in engine.events():
                    if event.action == CONNECTED:
                        self._refresh = True
                        if failures:
                            log.info("Reconnected to the container engine; reconciling.")
                        failures = 0
                    base = event.action.split(":", 1)[0]
                    if base in DEATHS:
                        self._dead.add(event.container_id)
                    elif base in BIRTHS:
                        self._dead.discard(event.container_id)
                    if is_relevant(event):
                        log.debug(
                            "Engine event %s for %s.", event.action, event.name or event.container_id[:12]
                        )
                        self.dirty.set()
                        if self._settle is not None:
                            self._settle.cancel()
                        self._settle = asyncio.get_running_loop().call_later(SETTLE, self.dirty.set)
                        if event.action.startswith("health_status") and self._runners is not None:
                            self._runners.poke(container_id=event.container_id)
            except EngineError as exc:
                failures += 1
                if failures in (1, 2, 4) or failures % 20 == 0:
                    log.warning("%s Reconnecting (attempt %d).", exc, failures)
            await asyncio.sleep(backoff(max(failures, 1)))

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
                failures = 0
            except (EngineError, ConsulError) as exc:
                failures += 1
                if failures in (1, 2, 4) or failures % 20 == 0:
                    log.warning("%s Retrying (attempt %d).", exc, failures)
                await asyncio.sleep(backoff(failures))
                self.dirty.set()

    async def reconcile(self) -> None:
        """Make the agent match the running containers and service files, once."""
        engine_error: EngineError | None = None
        if self.engine is not None:
            try:
                refresh, self._refresh = self._refresh, False
                self._containers = await self.engine.running(refresh=refresh)
            except EngineError as exc:
                engine_error = exc  # keep the last listing: the containers may well still run
                self._refresh = True
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
                self._warn_once(f"{exc} ({spec.origin})")
                failed.add(spec.id)
            else:
                log.info("Registered %s (%s).", spec.id, spec.origin)
        for sid in plan.deregister:
            await self.agent.deregister(sid)
            log.info("Deregistered %s.", sid)
        if self._runners is not None:
            active = [spec for spec in desired if spec.id not in failed]
            self._runners.update(check for spec in active for check in spec.checks)
            self._runners.poke(check.check_id for spec, _ in plan.register for check in spec.checks)
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
            log.info("Deregistered %d services on stop.", count)
        except (ConsulError, TimeoutError) as exc:
            log.warning("Could not deregister on stop: %s", exc or "timed out")
