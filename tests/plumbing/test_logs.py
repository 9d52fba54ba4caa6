"""When a failure in a row is logged: the 1st, 2nd and 4th, then every Nth (both daemons' one rule)."""

from __future__ import annotations

from plumbing.logs import worth_logging


def test_an_outage_is_logged_at_its_start_then_now_and_then() -> None:
    assert [n for n in range(1, 61) if worth_logging(n, 20)] == [1, 2, 4, 20, 40, 60]
    assert [n for n in range(1, 31) if worth_logging(n, 10)] == [1, 2, 4, 10, 20, 30]
