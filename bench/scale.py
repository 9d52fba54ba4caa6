"""Scenario 2, scale: N services x 4 instances, one template with an upstream per service.

Instances are registered on four external nodes (scale_catalog.py) by a pool of threads; registration
time is measured apart from the proxy's time to its first complete configuration. nginx's front server routes on the ``X-Svc`` header
(``proxy_pass http://s_$http_x_svc``) so one probed service can be watched among thousands; Traefik routes
on its default ``Host(`name`)`` rule.

Per size and system: time to first render (and to routing), flip-to-route (remove and recover), for
the sidecar flip-to-file (the flip to the destination changing on disk) and the reloads meanwhile, RSS
and CPU at idle and under churn (10 flips/s by default), and the peak number of connections to Consul.
The sidecar runs twice: classic (render, ``nginx -t``, reload) on the plain nginx, and with ``[nginx]
dynamic = true`` on an nginx loading the Lua module (its own front server, same backends). The floors
at this size are scale_floor.py (reload) and scale_push.py (a direct push to the Lua endpoint).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .dynamic_rig import dynamic_config, lua_nginx
from .filewatch import FileChange
from .probe import Prober
from .progress import Steps
from .rig import (
    ConsulAgent,
    CpuMeter,
    NginxServer,
    PeakSampler,
    ProcStats,
    SidecarProcess,
    front_nginx,
    register_many,
    sidecar_config,
    wait_until,
)
from .scale_catalog import NODES, SETTLE, Flipper, Plan, Size, all_answer, body, churn, name
from .scale_floor import floor
from .scale_push import push_floor
from .traefik import Traefik

__all__ = ["FLIPS_ONLY", "Plan", "run_size"]

TEMPLATE = """{% import "nginx.j2" as nginx %}
{{ nginx.upstreams(tag="scale", prefix="s_") }}
"""
FULL = Plan()
FLIPS_ONLY = Plan(flips=8, idle_seconds=0, churn_seconds=0)  # the flip -> file sizes: no idle, no churn


def run_size(
    folder: Path,
    consul: ConsulAgent,
    size: int,
    *,
    systems: tuple[str, ...],
    steps: Steps,
    plan: Plan = FULL,
) -> dict[str, Any]:
    """Measure one size for each system ("ours", "dynamic", "traefik-1s") and the floors."""
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
            config = sidecar_config(folder / "ours", consul, nginx, TEMPLATE)
            results["ours"] = _sidecar("ours", config, at, nginx)
        if "dynamic" in systems:
            # The backends stay the classic nginx's: both front servers proxy to the same catalog.
            with lua_nginx(folder / "nginx-dynamic", upstream="s_$http_x_svc") as lua:
                config = dynamic_config(folder / "dynamic", consul, lua, TEMPLATE)
                results["dynamic"] = _sidecar("dynamic", config, at, lua.server)
                out["push_floor"] = push_floor(at, lua)
        if "traefik-1s" in systems:
            results["traefik-1s"] = _traefik(folder / "traefik", at)
        out["systems"] = results
        if "ours" in systems:
            out["floor"] = floor(at, nginx)
    return out


def _sidecar(system: str, config: Path, at: Size, nginx: NginxServer) -> dict[str, Any]:
    """One sidecar (classic or dynamic) from its start: first render, first route, then ``_measure``."""
    dest = nginx.upstreams
    at.steps.note(f"{at.size}: {system} first render")
    t0 = time.monotonic()
    sidecar = SidecarProcess(config)
    try:
        stats = ProcStats(sidecar.proc.pid)
        peak = PeakSampler(stats, at.consul.http_port)
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
                result = _measure(system, at, prober, stats, nginx)
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
        peak = PeakSampler(stats, at.consul.http_port)
        with peak, Prober(traefik.port, (name(at.probe),), max_seconds=600) as prober:
            wait_until(lambda: all_answer(prober), timeout=300, what="Traefik routing the probed service")
            routed = time.monotonic() - t0
            at.steps.advance()
            result = _measure("traefik-1s", at, prober, stats, None)
        result.update(first_render_s=None, first_route_s=routed, peak_connections=peak.connections)
        result["peak_rss_mb"] = max(result["peak_rss_mb"], peak.rss)
    return result


def _measure(
    system: str, at: Size, prober: Prober, stats: ProcStats, nginx: NginxServer | None
) -> dict[str, Any]:
    """Flip-to-route rounds through ``prober``, then CPU, RSS and connections at idle and under churn."""
    flips = _flips(system, at, prober, nginx)
    prober.stop()
    return {
        **flips,
        **_idle(system, at, stats),
        **_under_churn(system, at, stats, nginx.reloads if nginx else None),
        "peak_rss_mb": stats.rss_mb(),
    }


def _flips(system: str, at: Size, prober: Prober, nginx: NginxServer | None) -> dict[str, Any]:
    """Flip -> routed (remove, recover) and, for a sidecar, flip -> file and the reloads meanwhile."""
    out: dict[str, Any] = {k: [] for k in ("remove", "recover", "remove_file", "recover_file")}
    timeout = 60.0 if system.startswith("traefik") else 20.0
    before = nginx.reloads() if nginx else None
    for k in range(at.plan.flips):
        node = k % NODES + 1
        label = f"b{node}"
        for status, kind in (("critical", "remove"), ("passing", "recover")):
            with FileChange(nginx.upstreams if nginx else Path("/nonexistent")) as change:
                t0 = time.monotonic()
                at.flipper.set(at.probe, node, status)
                if kind == "remove":
                    sample = prober.wait_gone(label, t0, settle=SETTLE, timeout=timeout)
                else:
                    sample = prober.wait_back(label, t0, timeout=timeout)
            out[kind].append(sample)
            out[f"{kind}_file"].append(change.after(t0) if nginx else None)
            if kind == "remove":
                at.steps.advance(note=f"{at.size}: {system} flip {k + 1}/{at.plan.flips}")
                time.sleep(random.uniform(0.05, 0.3))
        wait_until(lambda: all_answer(prober), timeout=timeout, what="all four back")
        at.steps.advance()
    # Traefik reloads nothing we can count: None, not 0
    out["flip_reloads"] = nginx.reloads() - before if nginx and before is not None else None
    out["flip_count"] = 2 * at.plan.flips
    return out


def _idle(system: str, at: Size, stats: ProcStats) -> dict[str, Any]:
    if at.plan.idle_seconds <= 0:  # a flips-only plan (the flip -> file sizes)
        at.steps.advance()
        return {}
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
    if at.plan.churn_seconds <= 0:
        at.steps.advance()
        return {}
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
        "churn_flips": int(at.plan.churn_rate * at.plan.churn_seconds),
        # Traefik reloads nothing we can count: None, not 0
        "churn_reloads": (reloads() - before) if reloads and before is not None else None,
    }
