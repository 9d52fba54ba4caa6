"""The "Targets at a glance" table of docs/benchmarks.md for issue 11, from the results of one run.

Each row: the measure, the issue's "now" column (before), the target, what this run measured, and
whether it met it. A row whose scenario has no results says "not measured" rather than guessing; a
row about both modes is met only when every mode measured meets it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .report_text import med, ms, verdict

__all__ = ["ISSUE_TARGETS", "rows", "table"]

SIZES = ("100", "1000", "5000")
MODES = (("ours", "classic"), ("dynamic", "dynamic"))


@dataclass(frozen=True)
class Target:
    """One row of issue 11's table: its measure, the figure before the issue, the target, its judge."""

    measure: str
    before: str
    target: str
    judge: Callable[[dict[str, Any]], tuple[str, bool | None]]  # results -> (measured, met; None: not)


def table(results: dict[str, Any]) -> list[str]:
    """The markdown table, or nothing when no scenario it reads has results."""
    lines = rows(results)
    if not lines:
        return []
    return [
        "## Targets at a glance (issue 11)",
        "",
        "Medians on this machine, in this run, except *before* (the figures issue 11 started from).",
        "",
        "| measure | before | target | measured (this run) | met? |",
        "|---|---|---|---|---|",
        *lines,
        "",
    ]


def rows(results: dict[str, Any]) -> list[str]:
    """One markdown row per target; none at all when no scenario it reads has results."""
    if not any(k in results for k in ("scale", "churn")):
        return []
    out = []
    for t in ISSUE_TARGETS:
        measured, met = t.judge(results)
        mark = "not measured" if met is None else verdict(met)
        out.append(f"| {t.measure} | {t.before} | {t.target} | {measured} | {mark} |")
    return out


def _scale(results: dict[str, Any], size: str, system: str) -> dict[str, Any] | None:
    data = results.get("scale", {}).get(size, {}).get("systems", {}).get(system)
    return data if isinstance(data, dict) else None


def _worse(data: dict[str, Any] | None, *keys: str) -> float | None:
    """The worse (larger) median of ``keys`` in ``data``, in ms; None when none was measured."""
    values = [v for v in (med(data, k) for k in keys) if v is not None and v == v]
    return max(values) if values else None


def _timed(value: float | None) -> float | None:
    """A median; every sample timed out (NaN) counts as infinitely slow, not as unmeasured."""
    return float("inf") if value is not None and value != value else value


def _all(checks: Iterable[bool | None]) -> bool | None:
    known = [c for c in checks if c is not None]
    return all(known) if known else None


def _dynamic_flip(results: dict[str, Any]) -> tuple[str, bool | None]:
    parts, checks = [], []
    for size in SIZES:
        data = _scale(results, size, "dynamic")
        rem, rec = _timed(med(data, "remove")), _timed(med(data, "recover"))
        if data is None or rem is None or rec is None:
            parts.append(f"{int(size):,}: -")
            continue
        parts.append(f"{int(size):,}: {ms(rem)} / {ms(rec)} ms")
        checks.append(max(rem, rec) < 25)
    return "remove / recover at " + "; ".join(parts), _all(checks) if len(checks) == len(SIZES) else None


def _classic_ratio(results: dict[str, Any]) -> tuple[str, bool | None]:
    data = _scale(results, "5000", "ours")
    floor = results.get("scale", {}).get("5000", {}).get("floor")
    if data is None or not floor:
        return "-", None
    wake = med(floor, "consul_wake") or 0.0
    fl_rem, fl_add = wake + (med(floor, "reload_remove") or 0.0), wake + (med(floor, "reload_add") or 0.0)
    rem, rec = med(data, "remove") or 0.0, med(data, "recover") or 0.0
    worst = max(rem / fl_rem if fl_rem else float("inf"), rec / fl_add if fl_add else float("inf"))
    text = (
        f"remove {ms(rem)} ms (floor {ms(fl_rem)}), recover {ms(rec)} ms (floor {ms(fl_add)}): "
        f"{worst:.2f}x at worst"
    )
    return text, worst <= 1.3


def _per_mode(
    size: str, keys: tuple[str, ...], limit: float
) -> Callable[[dict[str, Any]], tuple[str, bool | None]]:
    """A judge: per mode, the worse median of ``keys`` at ``size``, each under ``limit`` ms."""

    def judge(results: dict[str, Any]) -> tuple[str, bool | None]:
        parts, checks = [], []
        for system, mode in MODES:
            value = _worse(_scale(results, size, system), *keys)
            if value is not None:
                parts.append(f"{mode} {ms(value)} ms")
                checks.append(value < limit)
        return ", ".join(parts) or "-", _all(checks)

    return judge


def _first_render(results: dict[str, Any]) -> tuple[str, bool | None]:
    parts, checks = [], []
    for system, mode in MODES:
        value = (_scale(results, "5000", system) or {}).get("first_render_s")
        if value is None:
            continue
        parts.append(f"{mode} {value:.1f} s")
        checks.append(value < 3)
    return ", ".join(parts) or "-", _all(checks)


def _rss(results: dict[str, Any]) -> tuple[str, bool | None]:
    parts, checks = [], []
    for system, mode in MODES:
        value = (_scale(results, "5000", system) or {}).get("peak_rss_mb")
        if value is None:
            continue
        parts.append(f"{mode} {ms(value)} MB")
        checks.append(value < 100)
    return ", ".join(parts) or "-", _all(checks)


def _dynamic_reloads(results: dict[str, Any]) -> tuple[str, bool | None]:
    reloads = flips = 0
    seen = False
    for size in results.get("scale", {}).values():
        data = size.get("systems", {}).get("dynamic")
        if not data or data.get("flip_reloads") is None:
            continue
        seen = True
        reloads += data["flip_reloads"] + (data.get("churn_reloads") or 0)
        flips += data.get("flip_count", 0) + data.get("churn_flips", 0)
    conv = results.get("convergence", {}).get("systems", {}).get("dynamic")
    if conv and conv.get("reloads") is not None:
        seen = True
        reloads += conv["reloads"]
        flips += len(conv["remove"]) + len(conv["recover"])
    churn = results.get("churn", {})
    dyn = churn.get("systems", {}).get("dynamic")
    if dyn and dyn.get("reloads") is not None:
        seen = True
        reloads += dyn["reloads"]
        flips += churn.get("flips", 0)
    if not seen:
        return "-", None
    return f"{reloads} reloads in {flips:,} flips (convergence, scale and churn)", reloads == 0


def _churn_failed(results: dict[str, Any]) -> tuple[str, bool | None]:
    churn = results.get("churn", {})
    parts, checks = [], []
    for system, mode in MODES:
        data = churn.get("systems", {}).get(system)
        if not data:
            continue
        parts.append(f"{mode} {data['failed']} of {data['requests']:,}")
        checks.append(data["failed"] == 0)
    flips = churn.get("flips")
    suffix = f" ({flips} flips)" if flips else ""
    # "both modes": one mode alone gives no verdict
    return (", ".join(parts) + suffix) if parts else "-", _all(checks) if len(checks) == len(MODES) else None


ISSUE_TARGETS = (
    Target(
        "flip -> routed, dynamic mode, at 100 / 1,000 / 5,000 services (remove and recover)",
        "0.3-0.5 s / 1.4-1.6 s / 3.9 s",
        "< 25 ms at every size",
        _dynamic_flip,
    ),
    Target(
        "flip -> routed, classic mode, at 5,000 services",
        "3.9 s",
        "<= 1.3 x the reload floor measured in the same run",
        _classic_ratio,
    ),
    Target(
        "flip -> file at 2,000 services (worse of remove / recover)",
        "120 ms",
        "< 40 ms",
        _per_mode("2000", ("remove_file", "recover_file"), 40),
    ),
    Target("first complete render at 5,000 services", "12 s", "< 3 s", _first_render),
    Target("peak RSS at 5,000 services", "157 MB", "< 100 MB", _rss),
    Target("reloads during pure health flips, dynamic mode", "one per flip", "0", _dynamic_reloads),
    Target("failed requests during 200 flips, both modes", "0", "0", _churn_failed),
)
