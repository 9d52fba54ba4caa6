"""Scenario 3, churn: many flips over a minute across many services while clients keep asking.

Every service has four instances (the four backends) with TTL checks; a flip fails one instance of a
service that has none failed, or passes the failed one again, so every service always has at least
three healthy instances and no client request has a reason to fail. A steady load cycles through all
services during the run. The same seeded schedule is played against each system:

* ours: the sidecar with ``wait`` min 100 ms / max 1 s; reloads counted in nginx's error log (SIGHUP);
* Traefik with refreshInterval 1s (no reloads: it swaps its configuration in memory);
* the floor: nginx reloaded directly by the benchmark once per flip (no Consul, no debounce), which shows
  what reloads alone cost the clients.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

from .probe import Prober
from .progress import Steps
from .rig import ConsulAgent, NginxServer, SidecarProcess, front_nginx, sidecar_config, wait_until
from .traefik import Traefik

__all__ = ["run"]

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
        for system in systems:
            steps.note(f"{system}: starting")
            if system == "ours":
                (folder / "ours").mkdir(parents=True, exist_ok=True)
                config = sidecar_config(folder / "ours", consul, nginx, TEMPLATE, wait=("100ms", "1s"))
                sidecar = SidecarProcess(config)
                try:
                    results[system] = _play(system, nginx.port, names, plan, seconds, consul, steps, nginx)
                finally:
                    sidecar.stop()
            elif system == "traefik-1s":
                with Traefik(folder / "traefik", consul.address, "1s") as traefik:
                    results[system] = _play(system, traefik.port, names, plan, seconds, consul, steps, None)
            elif system == "floor":
                results[system] = _play(system, nginx.port, names, plan, seconds, consul, steps, nginx)
        for i in range(services):
            for b in NODES:
                consul.deregister(sid(i, b))
    return {"services": services, "flips": len(plan), "seconds": seconds, "systems": results}


def _play(
    system: str,
    port: int,
    names: list[str],
    plan: list[tuple[int, str, str]],
    seconds: float,
    consul: ConsulAgent,
    steps: Steps,
    nginx: NginxServer | None,
) -> dict[str, Any]:
    """Play ``plan`` through Consul, or (the floor) by writing nginx's upstreams and reloading it directly."""
    direct = nginx if system == "floor" else None
    down: dict[int, str] = {}
    if direct is not None:
        _write_direct(direct, names, down)
    with Prober(port, names, pause=0.004, max_seconds=seconds + 300) as prober:
        _wait_serving(prober, system)
        time.sleep(1.0)
        reloads_before = nginx.reloads() if nginx else 0
        start = time.monotonic()
        for k, (i, backend, status) in enumerate(plan):
            delay = start + k * seconds / len(plan) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if direct is not None:
                _flip_direct(direct, names, down, i, backend, status)
            else:
                consul.set_ttl(sid(i, backend), status)
            if k % 10 == 0:
                steps.advance(10, note=f"{system}: flip {k}/{len(plan)}")
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


def _flip_direct(
    nginx: NginxServer, names: list[str], down: dict[int, str], i: int, backend: str, status: str
) -> None:
    """The floor's flip: ``down`` updated, the whole file rewritten and nginx reloaded."""
    if status == "passing":
        down.pop(i, None)
    else:
        down[i] = backend
    _write_direct(nginx, names, down)


def _write_direct(nginx: NginxServer, names: list[str], down: dict[int, str]) -> None:
    blocks = []
    for i, svc in enumerate(names):
        servers = "".join(f"    server 127.0.0.1:{nginx.backends[b]};\n" for b in NODES if down.get(i) != b)
        blocks.append(f"upstream s_{svc} {{\n{servers}}}\n")
    dest = nginx.conf_d / "upstreams.conf"
    tmp = dest.with_suffix(".tmp")
    tmp.write_text("".join(blocks))
    os.replace(tmp, dest)
    os.kill(int(nginx.pid_file.read_text()), signal.SIGHUP)
