"""Durations as Go and Consul write them ("150ms", "1m30s"), read and written back."""

from __future__ import annotations

import pytest

from plumbing.duration import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0), ("0s", 0), ("150ms", 0.15), ("1m30s", 90), ("2h", 7200)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "1x", "s", "1s2", "-1s", " 1 s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(300) == "300s"
    assert format_duration(0.25) == "250ms"
