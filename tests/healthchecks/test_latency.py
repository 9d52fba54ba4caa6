"""Benchmark, not a gate: engine event -> service in Consul, and death -> deregistered (medians printed).

Event times come from the engine's own event stream (``timeNano``); Consul is polled every 2 ms by a
thread of its own, because the engine's kill call itself returns only after its cleanup (about 0.4 s).
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.healthchecks.engines import EngineDaemon
from tests.support.consul_agent import ConsulAgent
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
ROUNDS = 6


def test_measure_registration_and_deregistration_latency(
    engine: EngineDaemon, consul: ConsulAgent, companion_factory, capsys: pytest.CaptureFixture[str]
) -> None:
    companion = companion_factory(engine).start()
    host = companion.hostname
    wait_until(lambda: "Registering for host" in companion.output(), 10, what="companion started")
    events: dict[tuple[str, str], float] = {}
    appeared: dict[str, float] = {}
    vanished: dict[str, float] = {}
    stop = threading.Event()
    stream = engine.client.api.events(decode=True, filters={"type": "container"})

    def read_events() -> None:
        for raw in stream:
            actor: dict[str, Any] = raw.get("Actor") or {}
            nanos = raw.get("timeNano")
            events.setdefault(
                (str(actor.get("ID")), str(raw.get("Action"))), nanos / 1e9 if nanos else time.time()
            )

    def poll_consul() -> None:
        known: set[str] = set()
        while not stop.is_set():
            now_ids = set(consul.services())
            now = time.time()
            for sid in now_ids - known:
                appeared.setdefault(sid, now)
            for sid in known - now_ids:
                vanished.setdefault(sid, now)
            known = now_ids
            time.sleep(0.002)

    threads = [
        threading.Thread(target=read_events, daemon=True),
        threading.Thread(target=poll_consul, daemon=True),
    ]
    for thread in threads:
        thread.start()
    up: list[float] = []
    down: list[float] = []
    cleanup = ThreadPoolExecutor(4)
    try:
        for i in range(ROUNDS):
            container = engine.run(f"lat{i}", labels={"SERVICE_NAME": "lat"}, ports={"8080/tcp": free_port()})
            sid = f"{host}:lat{i}:8080"
            registered = wait_until(lambda sid=sid: appeared.get(sid), 10, what="registered")  # type: ignore[misc]
            started = wait_until(lambda c=container: events.get((c.id, "start")), 5, what="start event")  # type: ignore[misc]
            up.append(registered - started)
            container.kill()
            gone = wait_until(lambda sid=sid: vanished.get(sid), 10, what="deregistered")  # type: ignore[misc]
            died = wait_until(
                lambda c=container: events.get((c.id, "die")) or events.get((c.id, "died")), 5, what="die"
            )  # type: ignore[misc]
            down.append(gone - died)
            cleanup.submit(container.remove, force=True)  # not measured: do not wait for it
    finally:
        stop.set()
        stream.close()
        cleanup.shutdown(wait=True)
    with capsys.disabled():
        print(
            f"\n[{engine.kind}] start event -> in Consul: median {statistics.median(up) * 1000:.0f} ms "
            f"(min {min(up) * 1000:.0f}, max {max(up) * 1000:.0f}); "
            f"die event -> deregistered: median {statistics.median(down) * 1000:.0f} ms "
            f"(min {min(down) * 1000:.0f}, max {max(down) * 1000:.0f}); {ROUNDS} rounds"
        )
    assert len(up) == len(down) == ROUNDS
