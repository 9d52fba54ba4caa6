"""Figures that fault tests report (faults injected, requests sent, requests failed), printed at the end."""

from __future__ import annotations

FIGURES: list[tuple[str, int, int, int]] = []


def record(what: str, *, faults: int, requests: int, failed: int) -> None:
    """Keep one test's figures for the suite's summary."""
    FIGURES.append((what, faults, requests, failed))


NOTES: list[str] = []


def note(line: str) -> None:
    """Keep one line for the suite's summary (a measured time, say), printed after the figures."""
    NOTES.append(line)
