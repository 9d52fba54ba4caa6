"""Scenario 4, the companion: containers started and killed on Podman, seen in Consul's catalog.

A private Podman API service (the test suite's ``EngineDaemon``) and the real ``upstreams-registrar run
--config FILE``. One at a time, COUNT busybox containers labelled ``SERVICE_NAME=cweb`` are started and
then killed. A thread reads the engine's event stream (``start``/``die``, timed on arrival) and another
reads ``/v1/catalog/service/cweb`` every 5 ms: *register* is the start event to the first
answer that lists the container's service, *deregister* the die event to the first that no longer does.
The floor: Consul's own path (an agent registration until the catalog query wakes with it) and the
engine's (kill call until its die event arrives).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.engines import EngineDaemon
from harness.image import build_image_tar
from harness.ports import free_port
from harness.process import stop_process

from .progress import Steps
from .rig import ConsulAgent, Poller, wait_until

__all__ = ["run"]

SERVICE = "cweb"
HOST = "bench-host"
POLL = 0.005
REGISTRAR = str(Path(sys.executable).with_name("upstreams-registrar"))


class CatalogWatch(Poller):
    """A thread reading one service's catalog entry every POLL seconds; records (time, IDs) answers."""

    interval = POLL

    def __init__(self, consul: ConsulAgent, service: str) -> None:
        super().__init__()
        self.url = f"{consul.address}/v1/catalog/service/{service}"
        self.answers: list[tuple[float, frozenset[str]]] = []

    def poll(self) -> bool:
        # Polled, not blocking: a blocking query on a service that has just lost its last instance
        # was seen not to wake on its next registration until its wait ran out (about 2 s).
        try:
            with urllib.request.urlopen(self.url, timeout=10) as resp:
                now = time.monotonic()
                ids = frozenset(e["ServiceID"] for e in json.loads(resp.read()))
        except OSError:
            self._stop.wait(0.1)
            return True
        self.answers.append((now, ids))
        return True

    def first(self, after: float, predicate: Any, timeout: float = 30.0) -> float | None:
        """The time of the first answer after ``after`` whose IDs satisfy ``predicate``."""
        found: list[float] = []

        def probe() -> bool:
            found[:] = [t for t, ids in list(self.answers) if t >= after and predicate(ids)][:1]
            return bool(found)

        try:
            wait_until(probe, timeout=timeout, interval=0.005)
        except AssertionError:
            return None
        return found[0]


class EventWatch:
    """A thread reading the engine's container events; records arrival times per (name, action)."""

    def __init__(self, engine: EngineDaemon) -> None:
        self.engine = engine
        self.seen: dict[tuple[str, str], float] = {}
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> EventWatch:
        self._stream = self.engine.client.events(decode=True, filters={"type": "container"})
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._stream is not None:
            self._stream.close()
        self._thread.join(5)

    def _run(self) -> None:
        try:
            for event in self._stream:
                now = time.monotonic()
                name = (event.get("Actor") or {}).get("Attributes", {}).get("name", "")
                self.seen.setdefault((name, str(event.get("Action", ""))), now)
        except Exception:  # the stream is closed at the end: that is how this thread stops
            return

    def when(self, name: str, *actions: str, timeout: float = 30.0) -> float | None:
        """Arrival time of the first of ``actions`` for container ``name``; None on timeout."""

        def probe() -> float | None:
            times = [self.seen[(name, a)] for a in actions if (name, a) in self.seen]
            return min(times) if times else None

        try:
            return wait_until(probe, timeout=timeout, interval=0.005)
        except AssertionError:
            return None


def run(
    folder: Path, consul: ConsulAgent, *, count: int, steps: Steps, env: Mapping[str, str]
) -> dict[str, Any]:
    """Start and kill ``count`` containers one by one with the companion running; samples in seconds.

    The companion runs with ``env`` less its Consul and Docker settings (it must use this run's parts).
    """
    root = folder / "podman"
    root.mkdir(parents=True, exist_ok=True)
    engine = EngineDaemon("podman", root, build_image_tar(root))
    steps.note("starting Podman")
    engine.start()
    try:
        engine.load_image()
        steps.advance()
        config = folder / "registrar.toml"
        config.write_text(
            f'[consul]\naddress = "{consul.address}"\n\n[registrar]\nhostname = "{HOST}"\n'
            f'advertise_address = "127.0.0.1"\nresync = "60s"\nderegister_on_stop = true\nengine = "{engine.url}"\n'
            '[status]\nlisten = ""\n'
        )
        own_env = {k: v for k, v in env.items() if not k.startswith(("CONSUL_", "DOCKER_"))}
        with (folder / "registrar.log").open("ab") as log:
            proc = subprocess.Popen(
                [REGISTRAR, "run", "--config", str(config)], stdout=log, stderr=log, env=own_env
            )
        try:
            time.sleep(1.0)
            if proc.poll() is not None:
                raise RuntimeError(
                    f"upstreams-registrar exited with {proc.returncode}; see {folder}/registrar.log"
                )
            result = _containers(engine, consul, count, steps)
        finally:
            stop_process(proc, timeout=20)
        result["floor"] = _floor(engine, consul, count, steps)
        return result
    finally:
        engine.stop()


def _containers(engine: EngineDaemon, consul: ConsulAgent, count: int, steps: Steps) -> dict[str, Any]:
    register: list[float | None] = []
    deregister: list[float | None] = []
    with CatalogWatch(consul, SERVICE) as catalog, EventWatch(engine) as events:
        time.sleep(0.3)
        for i in range(count):
            name = f"bench{i:02d}"
            sid = f"{HOST}:{name}:8080"
            container = engine.run(name, labels={"SERVICE_NAME": SERVICE}, ports={"8080/tcp": free_port()})
            started = events.when(name, "start")
            seen = catalog.first(started, lambda ids, s=sid: s in ids) if started else None
            register.append(seen - started if seen is not None and started is not None else None)
            container.kill()
            died = events.when(name, "die", "died")
            gone = catalog.first(died, lambda ids, s=sid: s not in ids) if died else None
            deregister.append(gone - died if gone is not None and died is not None else None)
            container.remove(force=True)
            steps.advance(note=f"container {i + 1}/{count}")
    return {"register": register, "deregister": deregister}


def _floor(engine: EngineDaemon, consul: ConsulAgent, count: int, steps: Steps) -> dict[str, Any]:
    """Consul: agent registration -> catalog query wakes with it. Engine: kill call -> die event."""
    steps.note("floor")
    consul_path: list[float] = []
    with CatalogWatch(consul, "floor") as catalog:
        time.sleep(0.3)
        for i in range(count):
            t0 = time.monotonic()
            consul.register("floor", f"floor-{i}", 8080)
            seen = catalog.first(t0, lambda ids, s=f"floor-{i}": s in ids, timeout=10)
            if seen is not None:
                consul_path.append(seen - t0)
            consul.deregister(f"floor-{i}")
    kill_event: list[float] = []
    with EventWatch(engine) as events:
        time.sleep(0.3)
        for i in range(min(count, 5)):
            name = f"floor{i}"
            container = engine.run(name)
            events.when(name, "start")
            t0 = time.monotonic()
            container.kill()
            died = events.when(name, "die", "died")
            if died is not None:
                kill_event.append(died - t0)
            container.remove(force=True)
    steps.advance()
    return {"consul_register": consul_path, "engine_die_event": kill_event}
