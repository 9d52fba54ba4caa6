"""Scenario 1, convergence: one instance of four flips to critical and back; when does the proxy follow?

Four backends (b1..b4, each answering with its name) are instances of service ``prime``, each with a TTL
check. Per round, one instance is failed through the agent API at t0 and the proxy is polled without
pause: *remove* is the time from t0 to the last answer from that instance (once none came for
``SETTLE`` seconds); then it is passed again at t1 and *recover* is the time from t1 to its first answer.
Proxies run one at a time against the same agent and backends: the floor (a minimal sidecar), this
project's sidecar (wait.min = 0), and Traefik with refreshInterval 1s and with its defaults. With
``[nginx] dynamic = true`` the sidecar runs against an nginx loading the Lua module (dynamic_rig.py), and
its floor is the minimal sidecar pushing to that nginx's endpoint instead of reloading it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from harness.sidecar import TEMPLATE

from .dynamic_rig import dynamic_config, hooked, lua_nginx
from .floor import MinimalPusher, MinimalSidecar
from .probe import Prober
from .progress import Steps
from .rig import (
    EMPTY_UPSTREAM,
    ConsulAgent,
    NginxServer,
    SidecarProcess,
    front_nginx,
    sidecar_config,
    wait_until,
)
from .traefik import Traefik

__all__ = ["SYSTEMS", "run"]

SETTLE = 0.6  # no answer from the failed instance for this long: it is out
BACKENDS = ("b1", "b2", "b3", "b4")
SYSTEMS = ("floor", "floor-push", "ours", "dynamic", "traefik-1s", "traefik-default")
LABELS = {
    "floor": "Floor (minimal sidecar: blocking query, write, SIGHUP)",
    "floor-push": "Push floor (minimal sidecar: blocking query, POST to the Lua endpoint)",
    "ours": "upstreams (this project, wait.min = 0)",
    "dynamic": "upstreams, [nginx] dynamic = true (wait.min = 0)",
    "traefik-1s": "Traefik 3 Consul Catalog, refreshInterval 1s",
    "traefik-default": "Traefik 3 Consul Catalog, defaults (15s)",
}
TIMEOUTS = {"traefik-1s": 15.0, "traefik-default": 45.0}  # 10 s for the others

# Starts a proxy; yields its front port, for the floors the minimal sidecar (for its timings), and the
# nginx whose reloads are counted (None for Traefik).
Started = tuple[int, MinimalSidecar | None, NginxServer | None]
Proxy = Callable[[], AbstractContextManager[Started]]


def run(
    folder: Path,
    consul: ConsulAgent,
    *,
    rounds: int,
    default_rounds: int,
    systems: tuple[str, ...],
    steps: Steps,
) -> dict[str, Any]:
    """Measure every system in ``systems``; samples in seconds (None: timed out)."""
    with front_nginx(folder / "nginx-ours") as ours_nginx:
        for name, port in ours_nginx.backends.items():
            consul.register_ttl("prime", name, port)
        proxies: dict[str, Proxy] = {
            "floor": lambda: _floor(folder / "floor", consul),
            "floor-push": lambda: _floor_push(folder / "floor-push", consul),
            "ours": lambda: _ours(folder / "ours", consul, ours_nginx),
            "dynamic": lambda: _dynamic(folder / "dynamic", consul),
            "traefik-1s": lambda: _traefik(folder / "traefik-1s", consul, "1s"),
            "traefik-default": lambda: _traefik(folder / "traefik-default", consul, None),
        }
        results: dict[str, Any] = {}
        for system in systems:
            n = default_rounds if system == "traefik-default" else rounds
            steps.note(f"{system}: starting")
            with proxies[system]() as (port, floor, nginx):
                results[system] = _rounds(system, port, consul, n, steps, nginx)
                if floor is not None:
                    results[system]["parts"] = _floor_parts(floor, results[system])
        for name in BACKENDS:
            consul.deregister(name)
    return {"systems": results, "labels": {s: LABELS[s] for s in systems}}


def _rounds(
    system: str, port: int, consul: ConsulAgent, n: int, steps: Steps, nginx: NginxServer | None
) -> dict[str, Any]:
    remove: list[float | None] = []
    recover: list[float | None] = []
    wakes: list[float] = []
    timeout = TIMEOUTS.get(system, 10.0)
    with Prober(port, ("prime",), max_seconds=n * 2 * (timeout + 2) + 60) as prober:
        _wait_all(prober, timeout=60)
        time.sleep(0.5)  # after nginx's first reload its old worker answers 502 for 100 ms more
        ready = time.monotonic()
        reloads = nginx.reloads() if nginx else None  # after the first render's reload, if any
        for i in range(n):
            victim = BACKENDS[i % len(BACKENDS)]
            t0 = time.monotonic()
            consul.set_ttl(victim, "critical")
            remove.append(prober.wait_gone(victim, t0, settle=SETTLE, timeout=timeout))
            time.sleep(random.uniform(0.05, 0.3))  # decorrelate from pollers' phases
            t1 = time.monotonic()
            consul.set_ttl(victim, "passing")
            recover.append(prober.wait_back(victim, t1, timeout=timeout))
            _wait_all(prober, timeout=timeout + 10)
            time.sleep(random.uniform(0.05, 0.3))
            steps.advance(note=f"{system}: round {i + 1}/{n}")
            wakes.extend([t0, t1])
        failed = len(prober.failures(since=ready))
    if nginx and reloads is not None:
        reloads = nginx.reloads() - reloads
    return {
        "remove": remove,
        "recover": recover,
        "flips": wakes,
        "failed_requests": failed,
        "reloads": reloads,
    }


def _wait_all(prober: Prober, timeout: float) -> None:
    start = time.monotonic()
    wait_until(
        lambda: set(BACKENDS) <= prober.labels(max(start, time.monotonic() - 1.0)),
        timeout=timeout,
        what="every backend answering through the proxy",
    )


@contextmanager
def _floor(folder: Path, consul: ConsulAgent) -> Iterator[Started]:
    folder.mkdir(parents=True, exist_ok=True)
    with front_nginx(folder) as nginx:
        dest = nginx.conf_d / "upstreams.conf"
        sidecar = MinimalSidecar(consul.address, "prime", dest, nginx.pid_file, "primes")
        with sidecar:
            sidecar.ready.wait(10)
            yield nginx.port, sidecar, nginx


def _floor_parts(sidecar: MinimalSidecar, floor_result: dict[str, Any]) -> dict[str, list[float]]:
    """Split the floor's samples: Consul's wake-up after each flip, then signal-to-route in nginx."""
    parts: dict[str, list[float]] = {"consul_wake": [], "reload_remove": [], "reload_add": []}
    flips = floor_result["flips"]
    for i, (t0, t1) in enumerate(zip(flips[::2], flips[1::2], strict=True)):
        for t, sample, key in (
            (t0, floor_result["remove"][i], "reload_remove"),
            (t1, floor_result["recover"][i], "reload_add"),
        ):
            wake = sidecar.wake_after(t)
            if wake is None or sample is None:
                continue
            parts["consul_wake"].append(wake.arrived - t)
            if wake.signalled is not None:
                parts[key].append(max(0.0, t + sample - wake.signalled))
    return parts


@contextmanager
def _ours(folder: Path, consul: ConsulAgent, nginx: NginxServer) -> Iterator[Started]:
    folder.mkdir(parents=True, exist_ok=True)
    sidecar = SidecarProcess(sidecar_config(folder, consul, nginx, TEMPLATE))
    try:
        yield nginx.port, None, nginx
    finally:
        sidecar.stop()


@contextmanager
def _floor_push(folder: Path, consul: ConsulAgent) -> Iterator[Started]:
    folder.mkdir(parents=True, exist_ok=True)
    with lua_nginx(folder, initial=hooked("primes", "    server 127.0.0.1:1 down;\n")) as nginx:
        pusher = MinimalPusher(consul.address, "prime", nginx, "primes")
        with pusher:
            pusher.ready.wait(10)
            yield nginx.server.port, pusher, nginx.server


@contextmanager
def _dynamic(folder: Path, consul: ConsulAgent) -> Iterator[Started]:
    folder.mkdir(parents=True, exist_ok=True)
    with lua_nginx(folder / "nginx", initial=EMPTY_UPSTREAM) as nginx:
        sidecar = SidecarProcess(dynamic_config(folder, consul, nginx, TEMPLATE))
        try:
            yield nginx.server.port, None, nginx.server
        finally:
            sidecar.stop()


@contextmanager
def _traefik(folder: Path, consul: ConsulAgent, refresh: str | None) -> Iterator[Started]:
    with Traefik(folder, consul.address, refresh) as traefik:
        yield traefik.port, None, None
