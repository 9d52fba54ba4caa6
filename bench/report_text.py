"""The targets and the small formatting helpers every section of docs/benchmarks.md shares."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .stats import summary

__all__ = ["TARGETS", "dist", "get", "load_line", "med", "ms", "ratio", "rows", "verdict"]

TARGETS = {
    "recover": 50.0,  # ms, median, scenario 1
    "remove": 150.0,  # ms, median, scenario 1
    "connections": 8,  # at 5,000 services
    "rss": 150.0,  # MB at 5,000 services
    "flip": 300.0,  # ms at 5,000 services
    "idle_cpu": 1.0,  # % at 5,000 services
    "companion": 100.0,  # ms, median, each way
}


def ms(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return "-"
    return f"{a / b:.2f}x"


def verdict(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def dist(samples: list[float | None]) -> str:
    s = summary(samples)
    text = f"{ms(s['median'])} / {ms(s['p90'])} / {ms(s['max'])}"
    return text + (f" ({s['timeouts']} timed out)" if s["timeouts"] else "")


def load_line(section: dict[str, Any]) -> str:
    load = section.get("load")
    when = section.get("when", "")
    if not load:
        return ""
    return f"_Run {when}; load average before / after: {load[0]} / {load[1]}; took {section.get('took_s', 0):.0f} s._"


def get(s: dict[str, Any] | None, key: str) -> Any:
    return None if s is None else s.get(key)


def med(s: dict[str, Any] | None, key: str) -> float | None:
    return None if s is None or key not in s else summary(s[key])["median"]


def rows(out: list[str]) -> Callable[..., None]:
    """A function appending one table row to ``out``: label, ours, peer, floor, and the two ratios."""

    def row(label: str, a: Any, b: Any, f: Any = None, digits: int = 0) -> None:
        out.append(
            f"| {label} | {ms(a, digits)} | {ms(b, digits)} | {ms(f, digits)} | {ratio(a, b)} | {ratio(a, f)} |"
        )

    return row
