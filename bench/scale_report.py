"""The scale section of docs/benchmarks.md (scenario 2), one table per size, from its results.

Columns: the sidecar classic and with ``dynamic = true``, Traefik, the reload floor and the push floor,
then each mode against its own floor (classic against the reload, dynamic against the push).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .report_text import TARGETS, dist, get, load_line, med, ms, ratio, verdict

__all__ = ["section"]

HEAD = (
    "| metric | upstreams | upstreams, dynamic | Traefik 1s | reload floor | push floor "
    "| classic / reload floor | dynamic / push floor |"
)


def section(scale: dict[str, Any]) -> list[str]:
    out = [
        "## 2. Scale: N services x 4 instances, one upstream per service",
        "",
        "Instances registered through `/v1/catalog/register` by 16 threads (registration time is apart from",
        "the first render). Flip-to-route is the remove / recover latency of one instance of one service among",
        "N, seen through the proxy; flip-to-file is the time from the flip to the destination file changing on",
        "disk. CPU is % of one core over 10 s (idle) and over 10 s of 10 flips/s (churn); for the sidecar,",
        "`+ n` is CPU of the children it ran (`nginx -t`). Connections: peak established TCP connections to",
        "Consul's HTTP port. Traefik runs with refreshInterval 1s. *upstreams, dynamic* is the sidecar with",
        "`[nginx] dynamic = true` against an nginx loading the Lua module (same catalog and backends). The",
        "reload floor is Consul's wake-up plus nginx's reload-to-route with the file edited by hand; the push",
        "floor is the probed upstream's peers pushed straight to the Lua endpoint. Sizes marked *flips only*",
        "measure the sidecars' flips (no idle, churn or Traefik). For flip-to-file, both floor columns show",
        "Consul's wake-up alone: the least any sidecar waits before it can write.",
        "",
    ]
    for size in sorted(scale, key=int):
        out += _size(int(size), scale[size])
    return out


def _size(size: int, data: dict[str, Any]) -> list[str]:
    systems = data.get("systems", {})
    ours, dyn, tr = systems.get("ours"), systems.get("dynamic"), systems.get("traefik-1s")
    floor, push = data.get("floor"), data.get("push_floor")
    only = " (flips only)" if data.get("flips_only") else ""
    out = [f"### {size:,} services ({data['instances']:,} instances){only}", "", load_line(data), ""]
    out += [f"Registration: {data['registration_s']:.1f} s.", "", HEAD, "|---|---|---|---|---|---|---|---|"]
    _latencies(out, (ours, dyn, tr), floor, push)
    _resources(out, (ours, dyn, tr))
    if floor:
        out.append(
            f"| reload floor parts (ms) | | | | Consul wake {dist(floor['consul_wake'])}; `nginx -t` "
            f"{dist(floor['nginx_check'])}; reload->removed {dist(floor['reload_remove'])}; reload->added "
            f"{dist(floor['reload_add'])} | | | |"
        )
    if push:
        out.append(
            f"| push floor parts (ms) | | | | | one push {dist(push['push_call'])}; push->removed "
            f"{dist(push['push_remove'])}; push->added {dist(push['push_add'])}; full push of "
            f"{push['upstreams']:,} upstreams ({push['full_push_kb']:,.0f} KB) {dist(push['full_push'])} | | |"
        )
    if size == 5000 and ours:  # the earlier targets are set at 5,000 services
        out += ["", _targets(ours)]
    out.append("")
    return out


def _row(out: list[str], label: str, values: Sequence[Any], floors: Sequence[Any], digits: int = 0) -> None:
    """One row: the three systems, the two floors, each mode against its floor."""
    ours, dyn, tr = values
    fl, push = floors
    cells = " | ".join(ms(v, digits) for v in (ours, dyn, tr, fl, push))
    out.append(f"| {label} | {cells} | {ratio(ours, fl)} | {ratio(dyn, push)} |")


def _latencies(out: list[str], systems: tuple[Any, Any, Any], floor: Any, push: Any) -> None:
    """First render and route, flip-to-route against the floors, flip-to-file, and the distributions."""
    ours, dyn, _ = systems
    seconds = [(get(s, "first_render_s") or math.nan) * 1000 for s in (ours, dyn)]
    _row(out, "first complete render (ms)", (*seconds, None), (None, None))
    routes = tuple((get(s, "first_route_s") or math.nan) * 1000 for s in systems)
    _row(out, "first route through the proxy (ms)", routes, (None, None))
    wake = (med(floor, "consul_wake") or 0) if floor else None
    fl_rem = wake + (med(floor, "reload_remove") or 0) if wake is not None else None
    fl_add = wake + (med(floor, "reload_add") or 0) if wake is not None else None
    # The push floor has no Consul in it: add the same wake-up, so both floors start at the flip.
    pu_rem = (wake or 0) + (med(push, "push_remove") or 0) if push else None
    pu_add = (wake or 0) + (med(push, "push_add") or 0) if push else None
    _row(out, "flip -> removed, median (ms)", tuple(med(s, "remove") for s in systems), (fl_rem, pu_rem))
    _row(out, "flip -> recovered, median (ms)", tuple(med(s, "recover") for s in systems), (fl_add, pu_add))
    for kind in ("remove", "recover"):
        files = tuple(med(s, f"{kind}_file") for s in (ours, dyn))
        _row(out, f"flip -> file ({kind}), median (ms)", (*files, None), (wake, wake), digits=1)
    spread = []
    for s in systems:
        spread.append(f"remove {dist(s['remove'])}; recover {dist(s['recover'])}" if s else "-")
    out.append(f"| flip latencies, median / p90 / max (ms) | {' | '.join(spread)} | | | | |")


def _resources(out: list[str], systems: tuple[Any, Any, Any]) -> None:
    """Memory, CPU (sidecars: own + children's), reloads and connections to Consul."""
    ours, dyn, tr = systems
    _row(out, "RSS idle (MB)", tuple(get(s, "idle_rss_mb") for s in systems), (None, None))
    _row(out, "RSS peak (MB)", tuple(get(s, "peak_rss_mb") for s in systems), (None, None))
    for label, key, digits in (("CPU idle (%)", "idle", 2), ("CPU under churn (%)", "churn", 1)):
        cells = [
            f"{ms(get(s, f'{key}_cpu_pct'), digits)} + {ms(get(s, f'{key}_children_cpu_pct'), digits)}"
            if get(s, f"{key}_cpu_pct") is not None
            else "-"
            for s in (ours, dyn)
        ]
        out.append(f"| {label} | {' | '.join(cells)} | {ms(get(tr, f'{key}_cpu_pct'), digits)} | | | | |")
    for label, key in (
        ("nginx reloads during the flips", "flip_reloads"),
        ("nginx reloads during churn", "churn_reloads"),
    ):
        out.append(f"| {label} | {ms(get(ours, key))} | {ms(get(dyn, key))} | - | | | | |")
    _row(out, "connections to Consul, peak", tuple(get(s, "peak_connections") for s in systems), (None, None))


def _targets(ours: dict[str, Any]) -> str:
    flip = max(med(ours, "remove") or 0, med(ours, "recover") or 0)
    checks = [
        ("connections ≤ 8", ours["peak_connections"] <= TARGETS["connections"]),
        ("RSS < 150 MB", ours["peak_rss_mb"] < TARGETS["rss"]),
        ("flip-to-route < 300 ms", flip < TARGETS["flip"]),
        ("idle CPU < 1%", ours.get("idle_cpu_pct", 0) < TARGETS["idle_cpu"]),
    ]
    return (
        "Earlier targets at 5,000 (classic mode): "
        + "; ".join(f"{name}: {verdict(ok)}" for name, ok in checks)
        + ("." if all(ok for _, ok in checks) else ". See *Diagnosis* below.")
    )
