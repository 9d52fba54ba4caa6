"""Durations written the way Consul and consul-template write them: ``"500ms"``, ``"10s"``, ``"1m30s"``."""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration"]

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Return the number of seconds in a Go-style duration string; raise ValueError if it is not one."""
    if not isinstance(text, str):
        raise ValueError(f"expected a duration string such as '10s', got {text!r}")
    stripped = text.strip()
    if stripped == "0":
        return 0.0
    pos = 0
    total = 0.0
    for match in _PART.finditer(stripped):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(stripped):
        raise ValueError(f"{text!r} is not a duration such as '500ms', '10s' or '1m30s'")
    return total


def format_duration(seconds: float) -> str:
    """Return a duration string Consul accepts for a number of seconds (whole milliseconds)."""
    millis = max(0, round(seconds * 1000))
    if millis % 1000 == 0:
        return f"{millis // 1000}s"
    return f"{millis}ms"
