"""Scenario 3, churn: many flips over a minute across many services while clients keep asking.

Every service has four instances (the four backends) with TTL checks; a flip fails one instance of a
service that has none failed, or passes the failed one again, so every service always has at least
three healthy instances and no client request has a reason to fail. A steady load cycles through all
services during the run. The same seeded schedule is played against each system:

* ours: the sidecar with ``wait`` min 100 ms / max 1 s; reloads counted in nginx's error log (SIGHUP);
* dynamic: the same sidecar with ``[nginx] dynamic = true``, against an nginx loading the Lua module
  (its own front server, same backends); a pure health flip should cost no reload at all;
* Traefik with refreshInterval 1s (no reloads: it swaps its configuration in memory);
* the floor: nginx reloaded directly by the benchmark once per flip (no Consul, no debounce), which shows
  what reloads alone cost the clients;
* the push floor: the changed upstream's peers pushed directly to the Lua endpoint once per flip.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dynamic_rig import LuaNginx, dynamic_config, hooked, lua_nginx, push
from .probe import Prober
from .progress import Steps
from .rig import ConsulAgent, NginxServer, SidecarProcess, front_nginx, sidecar_config, wait_until
from .traefik import Traefik

__all__ = ["SYSTEMS", "run", "schedule"]

SYSTEMS = ("floor", "floor-push", "ours", "dynamic", "traefik-1s")
WAIT = ("100ms", "1s")

TEMPLATE = """{% import "nginx.j2" as nginx %}
{{ nginx.upstreams(tag="churn", prefix="s_") }}
"""
NODES = ("b1", "b2", "b3", "b4")


def schedule(services: int, flips: int, seed: int = 5) -> list[tuple[int, str, str]]:
    """(service, backend, new status) per flip, never leaving a service with two instances down."""
    rng = random.Random(seed)
    down: dict[int, str] = {}
    out = []
    for k in range(flips):
        remaining = flips - k
        if down and (len(down) > remaining - 2 or len(down) == services or rng.random() < 0.5):
            i = rng.choice(sorted(down))
            out.append((i, down.pop(i), "passing"))
            continue
        i = rng.choice([j for j in range(services) if j not in down])
        down[i] = rng.choice(NODES)
        out.append((i, down[i], "critical"))
    out.extend((i, b, "passing") for i, b in sorted(down.items()))  # an odd count: end as it began
    return out


def sid(i: int, backend: str) -> str:
    return f"ch{i:03d}-{backend}"


def run(
    folder: Path,
    consul: ConsulAgent,
    *,
    services: int,
    flips: int,
    seconds: float,
    systems: tuple[str, ...],
    steps: Steps,
) -> dict[str, Any]:
    """Play the schedule against each system; count reloads and failed client requests."""
    plan = schedule(services, flips)
    names = [f"ch{i:03d}" for i in range(services)]
    results: dict[str, Any] = {}
    with front_nginx(folder / "nginx", upstream="s_$http_x_svc", initial="") as nginx:
        for i in range(services):
            for b in NODES:
                consul.register_ttl(names[i], sid(i, b), nginx.backends[b], Tags=["churn"])
        game = Game(names, plan, seconds, consul, steps, nginx.backends)
        for system in systems:
            steps.note(f"{system}: starting")
            with _proxy(system, folder, game, nginx) as (port, counted, flip):
                results[system] = _play(system, port, game, counted, flip)
        for i in range(services):
            for b in NODES:
                consul.deregister(sid(i, b))
    return {"services": services, "flips": len(plan), "seconds": seconds, "systems": results}


@dataclass(frozen=True)
class Game:
    """What every system is played: the services, the schedule, its length, and where the flips go."""

    names: list[str]
    plan: list[tuple[int, str, str]]
    seconds: float
    consul: ConsulAgent
    steps: Steps
    backends: dict[str, int]

    def set_ttl(self, i: int, backend: str, status: str) -> None:
        self.consul.set_ttl(sid(i, backend), status)


Flip = Callable[[int, str, str], None]  # (service, backend, status): make that change happen
Proxy = Iterator[tuple[int, NginxServer | None, Flip]]  # front port, nginx whose reloads count, flip


@contextmanager
def _proxy(system: str, folder: Path, game: Game, nginx: NginxServer) -> Proxy:
    """Start ``system``; yield its front port, the nginx whose reloads are counted, and how a flip is made."""
    if system == "ours":
        config = sidecar_config(folder / "ours", game.consul, nginx, TEMPLATE, wait=WAIT)
        with _running(config):
            yield nginx.port, nginx, game.set_ttl
    elif system == "dynamic":
        with lua_nginx(folder / "nginx-dynamic", upstream="s_$http_x_svc") as lua:
            config = dynamic_config(folder / "dynamic", game.consul, lua, TEMPLATE, wait=WAIT)
            with _running(config):
                yield lua.server.port, lua.server, game.set_ttl
    elif system == "traefik-1s":
        with Traefik(folder / "traefik", game.consul.address, "1s") as traefik:
            yield traefik.port, None, game.set_ttl
    elif system == "floor":
        yield nginx.port, nginx, DirectReload(nginx, game).flip
    elif system == "floor-push":
        with lua_nginx(folder / "nginx-push", upstream="s_$http_x_svc") as lua:
            yield lua.server.port, lua.server, DirectPush(lua, game).flip
    else:
        raise ValueError(f"churn cannot run {system!r}")


@contextmanager
def _running(config: Path) -> Iterator[SidecarProcess]:
    sidecar = SidecarProcess(config)
    try:
        yield sidecar
    finally:
        sidecar.stop()


def _play(system: str, port: int, game: Game, nginx: NginxServer | None, flip: Flip) -> dict[str, Any]:
    """Play the schedule through ``flip`` while the prober asks every service through ``port``."""
    with Prober(port, game.names, pause=0.004, max_seconds=game.seconds + 300) as prober:
        _wait_serving(prober, system)
        time.sleep(1.0)
        reloads_before = nginx.reloads() if nginx else 0
        start = time.monotonic()
        for k, (i, backend, status) in enumerate(game.plan):
            delay = start + k * game.seconds / len(game.plan) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            flip(i, backend, status)
            if k % 10 == 0:
                game.steps.advance(10, note=f"{system}: flip {k}/{len(game.plan)}")
        time.sleep(2.0)  # let the last change land
        end = time.monotonic()
        failed = [r for r in prober.since(start) if r.start <= end and not r.ok]
        total = sum(1 for r in prober.since(start) if r.start <= end)
    reloads = (nginx.reloads() - reloads_before) if nginx else None
    kinds: dict[str, int] = {}
    for r in failed:
        kinds[r.label] = kinds.get(r.label, 0) + 1
    return {"reloads": reloads, "requests": total, "failed": len(failed), "failed_kinds": kinds}


def _wait_serving(prober: Prober, system: str) -> None:
    """Until the last half second of requests is more than five, all answered."""
    wait_until(
        lambda: (
            len(prober.since(time.monotonic() - 0.5)) > 5
            and all(r.ok for r in prober.since(time.monotonic() - 0.5))
        ),
        timeout=120,
        what=f"{system} serving every service",
    )


class DirectReload:
    """The floor's flips: ``down`` updated, the whole file rewritten and nginx reloaded, once per flip."""

    def __init__(self, nginx: NginxServer, game: Game) -> None:
        self.nginx, self.game = nginx, game
        self.down: dict[int, str] = {}
        self.write(hook=False)
        os.kill(int(nginx.pid_file.read_text()), signal.SIGHUP)

    def flip(self, i: int, backend: str, status: str) -> None:
        if status == "passing":
            self.down.pop(i, None)
        else:
            self.down[i] = backend
        self.write(hook=False)
        os.kill(int(self.nginx.pid_file.read_text()), signal.SIGHUP)

    def servers(self, i: int) -> list[str]:
        return [b for b in NODES if self.down.get(i) != b]

    def write(self, hook: bool) -> None:
        blocks = []
        for i, svc in enumerate(self.game.names):
            lines = "".join(f"    server 127.0.0.1:{self.game.backends[b]};\n" for b in self.servers(i))
            blocks.append(hooked(f"s_{svc}", lines) if hook else f"upstream s_{svc} {{\n{lines}}}\n")
        dest = self.nginx.upstreams
        tmp = dest.with_suffix(".tmp")
        tmp.write_text("".join(blocks))
        os.replace(tmp, dest)


class DirectPush(DirectReload):
    """The dynamic floor's flips: one push of the changed upstream's peers per flip, no file, no reload.

    The file, with the balancer hook in every upstream, is written and loaded once at the start.
    """

    def __init__(self, lua: LuaNginx, game: Game) -> None:
        self.lua, self.nginx, self.game = lua, lua.server, game
        self.down = {}
        self.write(hook=True)
        os.kill(int(self.nginx.pid_file.read_text()), signal.SIGHUP)

    def flip(self, i: int, backend: str, status: str) -> None:
        if status == "passing":
            self.down.pop(i, None)
        else:
            self.down[i] = backend
        peers = [
            {"address": "127.0.0.1", "port": self.game.backends[b], "weight": 1, "backup": False}
            for b in self.servers(i)
        ]
        push(self.lua, {f"s_{self.game.names[i]}": peers})
