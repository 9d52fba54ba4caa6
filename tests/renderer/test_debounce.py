"""The debounce policy: quiet for ``min``, never waiting more than ``max``, at most one render per ``max``."""

from __future__ import annotations

import pytest

from renderer.debounce import Quiescence


def test_quiescence_fires_when_quiet_for_min() -> None:
    q = Quiescence(min=1.0, max=10.0)
    q.change(0.0)
    assert q.delay(0.0) == 1.0
    q.change(0.5)
    assert q.delay(0.5) == 1.0
    assert q.delay(1.5) == 0.0


def test_quiescence_never_waits_longer_than_max_after_the_first_change() -> None:
    q = Quiescence(min=1.0, max=3.0)
    for t in (0.0, 0.9, 1.8, 2.7):
        q.change(t)
    assert q.delay(2.7) == pytest.approx(0.3)


def test_quiescence_zero_min_fires_at_once_and_fired_resets() -> None:
    q = Quiescence(min=0.0, max=0.0)
    q.change(5.0)
    assert q.delay(5.0) == 0.0
    q2 = Quiescence(min=1.0, max=2.0)
    q2.change(0.0)
    q2.fired()
    assert not q2.pending() and q2.delay(0.0) == 0.0


def test_quiescence_renders_at_most_once_per_max() -> None:
    q = Quiescence(min=0.1, max=1.0)
    q.change(0.0)
    assert q.delay(0.1) == 0.0
    q.fired(0.1)
    q.change(0.4)  # quiet for min at 0.5, but the last render was only 0.4s ago
    assert q.delay(0.5) == pytest.approx(0.6)
    assert q.delay(1.1) == 0.0
    q.fired(1.1)
    q.change(5.0)  # long after: only min applies
    assert q.delay(5.0) == pytest.approx(0.1)
