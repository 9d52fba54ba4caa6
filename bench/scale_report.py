"""The scale section of docs/benchmarks.md (scenario 2), one table per size, from its results."""

from __future__ import annotations

import math
from typing import Any

from .report_text import TARGETS, dist, get, load_line, med, ms, ratio, rows, verdict

__all__ = ["section"]


def section(scale: dict[str, Any]) -> list[str]:
    out = [
        "## 2. Scale: N services x 4 instances, one upstream per service",
        "",
        "Instances registered through `/v1/catalog/register` by 16 threads (registration time is apart from",
        "the first render). Flip-to-route is the remove / recover latency of one instance of one service among",
        "N, seen through the proxy. CPU is % of one core over 10 s (idle) and over 10 s of 10 flips/s (churn);",
        "for the sidecar, `+ n` is CPU of the children it ran (`nginx -t`). Connections: peak established TCP",
        "connections to Consul's HTTP port. Traefik runs with refreshInterval 1s.",
        "",
    ]
    for size in sorted(scale, key=int):
        out += _size(int(size), scale[size])
    return out


def _size(size: int, data: dict[str, Any]) -> list[str]:
    systems = data.get("systems", {})
    ours = systems.get("ours")
    out = [f"### {size:,} services ({data['instances']:,} instances)", "", load_line(data), ""]
    out += [
        f"Registration: {data['registration_s']:.1f} s.",
        "",
        "| metric | upstreams | Traefik 1s | floor | ours / Traefik | ours / floor |",
        "|---|---|---|---|---|---|",
    ]
    _latencies(out, ours, systems.get("traefik-1s"), data.get("floor"))
    _resources(out, ours, systems.get("traefik-1s"))
    floor = data.get("floor")
    if floor:
        out.append(
            f"| floor parts (ms) | | | Consul wake {dist(floor['consul_wake'])}; `nginx -t` {dist(floor['nginx_check'])}; "
            f"reload->removed {dist(floor['reload_remove'])}; reload->added {dist(floor['reload_add'])} | | |"
        )
    if size == 5000 and ours:  # the targets are set at 5,000 services
        out += ["", _targets(ours)]
    out.append("")
    return out


def _latencies(out: list[str], ours: Any, tr: Any, floor: Any) -> None:
    """First render and route, and flip-to-route against Traefik and the floor (its wake plus reload)."""
    row = rows(out)
    first = get(ours, "first_render_s")
    row("first complete render (ms)", first * 1000 if first else None, None)
    row(
        "first route through the proxy (ms)",
        (get(ours, "first_route_s") or math.nan) * 1000,
        (get(tr, "first_route_s") or math.nan) * 1000,
    )
    fl_rem = (med(floor, "consul_wake") or 0) + (med(floor, "reload_remove") or 0) if floor else None
    fl_add = (med(floor, "consul_wake") or 0) + (med(floor, "reload_add") or 0) if floor else None
    row("flip -> removed, median (ms)", med(ours, "remove"), med(tr, "remove"), fl_rem)
    row("flip -> recovered, median (ms)", med(ours, "recover"), med(tr, "recover"), fl_add)
    if ours:
        out.append(
            f"| flip latencies, median / p90 / max (ms) | remove {dist(ours['remove'])}; recover {dist(ours['recover'])} | "
            + (f"remove {dist(tr['remove'])}; recover {dist(tr['recover'])}" if tr else "-")
            + " | | | |"
        )


def _resources(out: list[str], ours: Any, tr: Any) -> None:
    """Memory, CPU (ours: own + children's), reloads and connections to Consul."""
    row = rows(out)
    row("RSS idle (MB)", get(ours, "idle_rss_mb"), get(tr, "idle_rss_mb"))
    row("RSS peak (MB)", get(ours, "peak_rss_mb"), get(tr, "peak_rss_mb"))
    out.append(
        f"| CPU idle (%) | {ms(get(ours, 'idle_cpu_pct'), 2)} + {ms(get(ours, 'idle_children_cpu_pct'), 2)} | "
        f"{ms(get(tr, 'idle_cpu_pct'), 2)} | | {ratio(get(ours, 'idle_cpu_pct'), get(tr, 'idle_cpu_pct'))} | |"
    )
    out.append(
        f"| CPU under churn (%) | {ms(get(ours, 'churn_cpu_pct'), 1)} + {ms(get(ours, 'churn_children_cpu_pct'), 1)} | "
        f"{ms(get(tr, 'churn_cpu_pct'), 1)} | | {ratio(get(ours, 'churn_cpu_pct'), get(tr, 'churn_cpu_pct'))} | |"
    )
    out.append(f"| nginx reloads during churn | {ms(get(ours, 'churn_reloads'))} | - | | | |")
    row("connections to Consul, peak", get(ours, "peak_connections"), get(tr, "peak_connections"))


def _targets(ours: dict[str, Any]) -> str:
    flip = max(med(ours, "remove") or 0, med(ours, "recover") or 0)
    checks = [
        ("connections ≤ 8", ours["peak_connections"] <= TARGETS["connections"]),
        ("RSS < 150 MB", ours["peak_rss_mb"] < TARGETS["rss"]),
        ("flip-to-route < 300 ms", flip < TARGETS["flip"]),
        ("idle CPU < 1%", ours["idle_cpu_pct"] < TARGETS["idle_cpu"]),
    ]
    return (
        "Targets at 5,000: "
        + "; ".join(f"{name}: {verdict(ok)}" for name, ok in checks)
        + ("." if all(ok for _, ok in checks) else ". See *Diagnosis* below.")
    )
