"""The daemon's decisions, in-process, with a scripted engine (the Engine seam) and a real Consul agent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from discovery.client import ConsulClient
from discovery.settings import ConsulSettings
from healthchecks.agent import Agent
from healthchecks.config import RegistrarConfig
from healthchecks.daemon import Registrar
from healthchecks.engine import CONNECTED, ContainerEvent, ContainerInfo, ExecResult, PortBinding
from healthchecks.labels import HostSettings
from plumbing.errors import EngineError
from tests.support.consul_agent import ConsulAgent

HOST = "fake-host"


def web(name: str, port: int) -> ContainerInfo:
    return ContainerInfo(
        id=name * 8,
        name=name,
        image="web",
        labels=(("SERVICE_CHECK_SCRIPT", "probe"), ("SERVICE_CHECK_INTERVAL", "100ms")),
        ports=(PortBinding(80, "tcp", "127.0.0.1", port),),
    )


class ScriptedEngine:
    """An Engine whose listing, events and exec results the test sets."""

    def __init__(self) -> None:
        self.listing: tuple[ContainerInfo, ...] = ()
        self.down = False
        self.exit_code = 0
        self.queue: asyncio.Queue[ContainerEvent | None] = asyncio.Queue()
        self.hold: asyncio.Event | None = None  # set: the list call waits for it (an engine tearing down)
        self.listings = 0

    async def running(self, refresh: bool = False) -> tuple[ContainerInfo, ...]:
        self.listings += 1
        if self.hold is not None:
            await self.hold.wait()
        if self.down:
            raise EngineError("The container engine at fake could not list running containers: down.")
        return self.listing

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        return None

    async def events(self) -> AsyncIterator[ContainerEvent]:
        if self.down:
            raise EngineError("The container engine at fake could not open the event stream: down.")
        yield ContainerEvent(CONNECTED, "")
        while (event := await self.queue.get()) is not None:
            yield event
        raise EngineError("The event stream of the container engine at fake ended.")

    async def exec(self, container_id: str, argv: tuple[str, ...], timeout: float, limit: int) -> ExecResult:
        return ExecResult(self.exit_code, f"exit {self.exit_code}")

    async def close(self) -> None:
        pass


def run_with(consul: ConsulAgent, scenario: Callable[[ScriptedEngine, Registrar], Awaitable[None]]) -> None:
    async def go() -> None:
        config = RegistrarConfig(
            path=Path("test.toml"),
            consul=ConsulSettings(port=consul.http_port),
            engine="fake",
            host=HostSettings(hostname=HOST),
            resync=60,
        )
        client = ConsulClient(config.consul)
        engine = ScriptedEngine()
        registrar = Registrar(config, Agent(client), engine)
        task = asyncio.create_task(registrar.run())
        try:
            await scenario(engine, registrar)
        finally:
            task.cancel()
            started = time.monotonic()
            await asyncio.gather(task, return_exceptions=True)
            assert time.monotonic() - started < 2, "the daemon did not stop promptly"
            await client.close()

    asyncio.run(go())


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_death_event_wins_over_a_listing_that_still_shows_the_container(consul: ConsulAgent) -> None:
    async def scenario(engine: ScriptedEngine, registrar: Registrar) -> None:
        engine.listing = (web("aa", 1001), web("bb", 1002))
        await engine.queue.put(ContainerEvent("start", "aa" * 8))
        await until(lambda: len(consul.services()) == 2)
        await engine.queue.put(ContainerEvent("die", "aa" * 8))  # the listing still has it
        await until(lambda: sorted(consul.services()) == [f"{HOST}:bb:80"])
        await engine.queue.put(ContainerEvent("start", "aa" * 8))  # started again
        await until(lambda: len(consul.services()) == 2)

    run_with(consul, scenario)


def test_a_death_is_deregistered_without_waiting_for_the_engines_listing(consul: ConsulAgent) -> None:
    async def scenario(engine: ScriptedEngine, registrar: Registrar) -> None:
        engine.listing = (web("aa", 1001), web("bb", 1002))
        await engine.queue.put(ContainerEvent("start", "aa" * 8))
        await until(lambda: len(consul.services()) == 2)
        engine.hold = asyncio.Event()  # from here on the engine's list call hangs until released
        listed = engine.listings
        await engine.queue.put(ContainerEvent("die", "aa" * 8))
        await until(lambda: sorted(consul.services()) == [f"{HOST}:bb:80"])
        assert engine.listings == listed  # deregistered from the event, with the last listing less the dead
        engine.listing = (web("bb", 1002),)
        engine.hold.set()
        await until(lambda: engine.listings > listed)  # the settle pass lists again, and agrees
        await asyncio.sleep(0.1)
        assert sorted(consul.services()) == [f"{HOST}:bb:80"]

    run_with(consul, scenario)


def test_the_script_result_reaches_the_ttl_check(consul: ConsulAgent) -> None:
    async def scenario(engine: ScriptedEngine, registrar: Registrar) -> None:
        engine.listing = (web("aa", 1001),)
        check = f"{HOST}:aa:80:script"

        def status() -> str | None:
            return consul.api("GET", "/v1/agent/checks").get(check, {}).get("Status")

        await until(lambda: status() == "passing")
        engine.exit_code = 1
        await until(lambda: status() == "warning")
        engine.exit_code = 2
        await until(lambda: status() == "critical")

    run_with(consul, scenario)


def test_an_absent_engine_keeps_registrations_and_recovers(consul: ConsulAgent) -> None:
    async def scenario(engine: ScriptedEngine, registrar: Registrar) -> None:
        engine.listing = (web("aa", 1001),)
        await until(lambda: len(consul.services()) == 1)
        engine.down = True
        await engine.queue.put(None)  # the stream breaks
        done = registrar.reconciled
        registrar.dirty.set()
        await asyncio.sleep(0.5)
        assert registrar.reconciled > done  # reconciles went on without the engine ...
        assert len(consul.services()) == 1  # ... and kept what the last listing said
        engine.listing = ()
        engine.down = False
        await until(lambda: consul.services() == {}, 15)  # reconnect, full reconcile

    run_with(consul, scenario)


def test_cancelling_deregisters_only_what_this_host_owns(consul: ConsulAgent) -> None:
    consul.register_ttl("foreign", "foreign-1", 1)

    async def scenario(engine: ScriptedEngine, registrar: Registrar) -> None:
        engine.listing = (web("aa", 1001),)
        await until(lambda: len(consul.services()) == 2)

    run_with(consul, scenario)
    assert list(consul.services()) == ["foreign-1"]
