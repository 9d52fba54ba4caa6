"""Scenario 2, scale: N services x 4 instances, one template with an upstream per service.

Instances are registered on four external nodes (scale_catalog.py) by a pool of threads; registration
time is measured apart from the proxy's time to its first complete configuration. nginx's front server routes on the ``X-Svc`` header
(``proxy_pass http://s_$http_x_svc``) so one probed service can be watched among thousands; Traefik routes
on its default ``Host(`name`)`` rule.

Per size and system: time to first render (and to routing), flip-to-route (remove and recover), RSS
and CPU at idle and under churn (10 flips/s by default), and the peak number of connections to Consul.
The floor at this size is scale_floor.py.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .probe import Prober
from .progress import Steps
from .rig import (
    ConsulAgent,
    CpuMeter,
    NginxServer,
    Poller,
    ProcStats,
    SidecarProcess,
    front_nginx,
    register_many,
    sidecar_config,
    wait_until,
)
from .scale_catalog import NODES, SETTLE, Flipper, Plan, Size, all_answer, body, churn, name
from .scale_floor import floor
from .traefik import Traefik

__all__ = ["Plan", "run_size"]

TEMPLATE = """{% import "nginx.j2" as nginx %}
{{ nginx.upstreams(tag="scale", prefix="s_") }}
"""
FULL = Plan()


def run_size(
    folder: Path,
    consul: ConsulAgent,
    size: int,
    *,
    systems: tuple[str, ...],
    steps: Steps,
    plan: Plan = FULL,
) -> dict[str, Any]:
    """Measure one size for each system ("ours", "traefik-1s") and the floor."""
    out: dict[str, Any] = {"size": size, "instances": size * NODES}
    with front_nginx(folder / "nginx", upstream="s_$http_x_svc", initial="") as nginx:
        ports = [nginx.backends[f"b{n}"] for n in range(1, NODES + 1)]
        bodies = [body(i, n, ports[n - 1]) for i in range(size) for n in range(1, NODES + 1)]
        steps.note(f"{size}: registering {len(bodies)} instances")
        out["registration_s"] = register_many(consul, bodies, "/v1/catalog/register")
        steps.advance()
        at = Size(consul, size, size // 2, Flipper(consul, ports), steps, plan)
        results: dict[str, Any] = {}
        if "ours" in systems:
            results["ours"] = _ours(folder / "ours", at, nginx)
        if "traefik-1s" in systems:
            results["traefik-1s"] = _traefik(folder / "traefik", at)
        out["systems"] = results
        if "ours" in systems:
            out["floor"] = floor(at, nginx)
    return out


def _ours(folder: Path, at: Size, nginx: NginxServer) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    dest = nginx.conf_d / "upstreams.conf"
    config = sidecar_config(folder, at.consul, nginx, TEMPLATE)
    at.steps.note(f"{at.size}: upstreams first render")
    t0 = time.monotonic()
    sidecar = SidecarProcess(config)
    try:
        stats = ProcStats(sidecar.proc.pid)
        peak = _PeakSampler(stats, at.consul.http_port)
        with peak:
            wait_until(
                lambda: dest.exists() and dest.read_text().count("upstream s_") >= at.size,
                timeout=600,
                interval=0.05,
                what=f"{at.size} upstreams rendered",
            )
            rendered = time.monotonic() - t0
            with Prober(nginx.port, (name(at.probe),), max_seconds=600) as prober:
                wait_until(lambda: all_answer(prober), timeout=60, what="the probed service routing")
                routed = time.monotonic() - t0
                at.steps.advance()
                result = _measure("ours", at, prober, stats, reloads=nginx.reloads)
        result.update(first_render_s=rendered, first_route_s=routed, peak_connections=peak.connections)
        result["peak_rss_mb"] = max(result["peak_rss_mb"], peak.rss)
    finally:
        sidecar.stop(timeout=30)
    return result


def _traefik(folder: Path, at: Size) -> dict[str, Any]:
    at.steps.note(f"{at.size}: Traefik first route")
    t0 = time.monotonic()
    with Traefik(folder, at.consul.address, "1s") as traefik:
        assert traefik.proc is not None
        stats = ProcStats(traefik.proc.pid)
        peak = _PeakSampler(stats, at.consul.http_port)
        with peak, Prober(traefik.port, (name(at.probe),), max_seconds=600) as prober:
            wait_until(lambda: all_answer(prober), timeout=300, what="Traefik routing the probed service")
            routed = time.monotonic() - t0
            at.steps.advance()
            result = _measure("traefik-1s", at, prober, stats)
        result.update(first_render_s=None, first_route_s=routed, peak_connections=peak.connections)
        result["peak_rss_mb"] = max(result["peak_rss_mb"], peak.rss)
    return result


def _measure(
    system: str, at: Size, prober: Prober, stats: ProcStats, reloads: Callable[[], int] | None = None
) -> dict[str, Any]:
    """Flip-to-route rounds through ``prober``, then CPU, RSS and connections at idle and under churn."""
    remove, recover = _flips(system, at, prober)
    prober.stop()
    return {
        "remove": remove,
        "recover": recover,
        **_idle(system, at, stats),
        **_under_churn(system, at, stats, reloads),
        "peak_rss_mb": stats.rss_mb(),
    }


def _flips(system: str, at: Size, prober: Prober) -> tuple[list[float | None], list[float | None]]:
    remove: list[float | None] = []
    recover: list[float | None] = []
    timeout = 20.0 if system == "ours" else 60.0
    for k in range(at.plan.flips):
        node = k % NODES + 1
        label = f"b{node}"
        t0 = time.monotonic()
        at.flipper.set(at.probe, node, "critical")
        remove.append(prober.wait_gone(label, t0, settle=SETTLE, timeout=timeout))
        at.steps.advance(note=f"{at.size}: {system} flip {k + 1}/{at.plan.flips}")
        time.sleep(random.uniform(0.05, 0.3))
        t1 = time.monotonic()
        at.flipper.set(at.probe, node, "passing")
        recover.append(prober.wait_back(label, t1, timeout=timeout))
        wait_until(lambda: all_answer(prober), timeout=timeout, what="all four back")
        at.steps.advance()
    return remove, recover


def _idle(system: str, at: Size, stats: ProcStats) -> dict[str, Any]:
    at.steps.note(f"{at.size}: {system} idle {at.plan.idle_seconds:g}s")
    time.sleep(min(2.0, at.plan.idle_seconds))
    meter = CpuMeter(stats)
    time.sleep(at.plan.idle_seconds)
    idle_cpu, idle_children = meter.percent()
    out = {
        "idle_cpu_pct": idle_cpu,
        "idle_children_cpu_pct": idle_children,
        "idle_rss_mb": stats.rss_mb(),
        "idle_connections": stats.connections(at.consul.http_port),
    }
    at.steps.advance()
    return out


def _under_churn(
    system: str, at: Size, stats: ProcStats, reloads: Callable[[], int] | None
) -> dict[str, Any]:
    at.steps.note(f"{at.size}: {system} churn {at.plan.churn_rate:g} flips/s")
    before = reloads() if reloads else None
    meter = CpuMeter(stats)
    churn(at.flipper, at.size, at.probe, at.plan.churn_rate, at.plan.churn_seconds)
    churn_cpu, churn_children = meter.percent()
    at.flipper.restore_all()
    at.steps.advance()
    return {
        "churn_cpu_pct": churn_cpu,
        "churn_children_cpu_pct": churn_children,
        # Traefik reloads nothing we can count: None, not 0
        "churn_reloads": (reloads() - before) if reloads and before is not None else None,
    }


class _PeakSampler(Poller):
    """Samples connections to Consul and RSS five times a second in a thread; keeps the peaks."""

    def __init__(self, stats: ProcStats, port: int) -> None:
        super().__init__()
        self.stats, self.port = stats, port
        self.connections = 0
        self.rss = 0.0

    def poll(self) -> bool:
        try:
            self.connections = max(self.connections, self.stats.connections(self.port))
            self.rss = max(self.rss, self.stats.rss_mb())
        except OSError:
            return False  # the process has gone
        return True
