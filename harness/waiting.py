"""Waiting for real parts to reach a state, without timed assertions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(probe: Callable[[], T], timeout: float = 15.0, interval: float = 0.02, what: str = "") -> T:
    """Return the first truthy value of ``probe()``; fail the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T = probe()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or probe!r}; last value {last!r}")
        time.sleep(interval)
        last = probe()
    return last
