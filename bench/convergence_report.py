"""The convergence section of docs/benchmarks.md (scenario 1) and its chart, from its results."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .report_text import TARGETS, dist, load_line, ms, ratio, verdict
from .stats import summary

__all__ = ["CHART", "chart", "section"]

CHART = "benchmarks-convergence.png"


def section(conv: dict[str, Any]) -> list[str]:
    systems = conv["systems"]
    out = [
        "## 1. Convergence: one of four instances fails, then recovers",
        "",
        load_line(conv),
        "",
        "A TTL check is failed (then passed) through the agent API at t0 while a client asks the proxy without",
        "pause (a new connection per request). *Remove*: t0 to the last answer from that instance; *recover*: t0",
        "to its first answer. The floor is a minimal sidecar (one blocking query; write; SIGHUP; no check, no",
        "template engine) measured in the same run; the push floor is the same minimal sidecar pushing the",
        "peers to nginx's Lua endpoint instead (no file, no reload), the floor of `[nginx] dynamic = true`,",
        "whose row is compared with it.",
        "",
        "| system | rounds | nginx reloads | remove (ms) | recover (ms) | remove / its floor | recover / its floor | remove / Traefik 1s | recover / Traefik 1s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    out += _systems(systems, conv.get("labels", {}))
    out.append("")
    for key, what in (("floor", "nginx from SIGHUP"), ("floor-push", "nginx from the push")):
        if "parts" in systems.get(key, {}):
            out += _floor_parts(systems[key]["parts"], what)
    if systems.get("ours"):
        out += _targets(systems)
    out += ["", f"![Convergence distributions]({CHART})", ""]
    return out


def _systems(systems: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """One row per system: its distributions and its medians against the floor's and Traefik 1s's."""
    traefik = systems.get("traefik-1s")
    out = []
    for key, data in systems.items():
        # Each mode against its own floor: dynamic mode against the push floor, the rest the reload floor.
        floor = systems.get("floor-push" if key in ("dynamic", "floor-push") else "floor")
        rem, rec = summary(data["remove"]), summary(data["recover"])
        fl_rem = summary(floor["remove"])["median"] if floor else None
        fl_rec = summary(floor["recover"])["median"] if floor else None
        tr_rem = summary(traefik["remove"])["median"] if traefik else None
        tr_rec = summary(traefik["recover"])["median"] if traefik else None
        out.append(
            f"| {labels.get(key, key)} | {rem['n']} | {ms(data.get('reloads'))} | {dist(data['remove'])} | {dist(data['recover'])} | "
            f"{ratio(rem['median'], fl_rem)} | {ratio(rec['median'], fl_rec)} | "
            f"{ratio(rem['median'], tr_rem)} | {ratio(rec['median'], tr_rec)} |"
        )
    return out


def _floor_parts(parts: dict[str, Any], what: str) -> list[str]:
    step = "SIGHUP" if "SIGHUP" in what else "push"
    linger = " (old workers linger)" if step == "SIGHUP" else ""
    return [
        f"Floor ({step}), split: Consul's blocking query wakes after the flip, then {what} until it routes:",
        "",
        "| part | median / p90 / max (ms) |",
        "|---|---|",
        f"| Consul wakes a blocking `/v1/health/service/prime` after the flip | {dist(parts['consul_wake'])} |",
        f"| nginx {step} -> new upstream routes (added instance) | {dist(parts['reload_add'])} |",
        f"| nginx {step} -> last request to the removed instance{linger} | {dist(parts['reload_remove'])} |",
        "",
    ]


def _targets(systems: dict[str, Any]) -> list[str]:
    ours = systems["ours"]
    rec, rem = summary(ours["recover"])["median"], summary(ours["remove"])["median"]
    failed = {k: v.get("failed_requests", 0) for k, v in systems.items()}
    return [
        f"Targets: recover < 50 ms median: {ms(rec)} ms, {verdict(rec < TARGETS['recover'])}; "
        f"remove < 150 ms median: {ms(rem)} ms, {verdict(rem < TARGETS['remove'])}"
        + (" (see *Diagnosis* below)." if rec >= TARGETS["recover"] or rem >= TARGETS["remove"] else "."),
        "",
        "Failed client requests during the rounds: " + ", ".join(f"{k} {v}" for k, v in failed.items()) + ".",
    ]


def chart(conv: dict[str, Any], path: Path) -> None:
    """Strip plots of the remove and recover samples per system, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = conv["systems"]
    names = list(systems)
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.9 * len(names) + 1.6), sharey=True)
    targets = {"remove": TARGETS["remove"], "recover": TARGETS["recover"]}
    for ax, kind in zip(axes, ("remove", "recover"), strict=True):
        for y, key in enumerate(names):
            values = [v * 1000 for v in systems[key][kind] if v is not None]
            jitter = [y + 0.25 * math.sin(i * 2.4) for i in range(len(values))]
            ax.scatter(values, jitter, s=14, alpha=0.7)
            if values:
                median = summary(systems[key][kind])["median"]
                ax.plot([median, median], [y - 0.35, y + 0.35], color="black", linewidth=2)
        ax.axvline(
            targets[kind], color="red", linestyle="--", linewidth=1, label=f"target {targets[kind]:g} ms"
        )
        ax.set_xscale("log")
        ax.set_xlabel("milliseconds (log scale); bar = median")
        ax.set_title(
            "failed instance: last request" if kind == "remove" else "recovered instance: first request"
        )
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(True, axis="x", which="both", alpha=0.3)
    axes[0].set_yticks(range(len(names)))
    axes[0].set_yticklabels(
        [conv.get("labels", {}).get(n, n).split(" (")[0] + f"\n({n})" for n in names], fontsize=8
    )
    fig.suptitle("Convergence after a health flip (Consul -> proxy routes accordingly)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
