"""Small statistics over latency samples (seconds in, milliseconds out); None marks a timeout."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["pct", "summary"]


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    data = sorted(values)
    if not data:
        return math.nan
    k = (len(data) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def summary(samples: Sequence[float | None]) -> dict[str, float | int]:
    """median, p90, max in ms, and how many samples there were and how many timed out."""
    done = [s * 1000 for s in samples if s is not None]
    return {
        "n": len(samples),
        "timeouts": sum(1 for s in samples if s is None),
        "median": pct(done, 50),
        "p90": pct(done, 90),
        "max": max(done) if done else math.nan,
    }
