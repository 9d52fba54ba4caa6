"""The blocking-query rules, each with its own test (a scripted fetch stands in for Consul's answers)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from discovery.blocking import BlockingQuery, next_index, too_stale
from plumbing.errors import ConsulDenied, ConsulUnavailable


def test_first_answer_index_is_sent_back() -> None:
    assert next_index(0, "42") == 42


def test_index_going_backwards_resets_to_the_smallest_blocking_index() -> None:
    assert next_index(100, 7) == 1


def test_index_zero_is_never_sent_after_the_first_answer() -> None:
    assert next_index(0, 0) == 1
    assert next_index(5, None) == 1
    assert next_index(5, "garbage") == 1


def test_index_moving_forward_is_kept() -> None:
    assert next_index(10, 11) == 11


def test_stale_answer_older_than_max_stale_is_too_stale() -> None:
    assert too_stale("10001", 10.0)
    assert not too_stale("10000", 10.0)
    assert not too_stale("0", 0.5)


def test_stale_answer_without_a_readable_last_contact_is_kept() -> None:
    # Consul's streaming backend omits the header: no evidence of age, so no second request.
    assert not too_stale(None, 1.0)
    assert not too_stale("soon", 1.0)


class Script:
    """A fetch that replays answers (index, data) or raises, recording the indexes it was sent."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.sent: list[int] = []
        self.times: list[float] = []

    async def __call__(self, index: int, wait: str) -> tuple[int, Any]:
        self.sent.append(index)
        self.times.append(time.monotonic())
        answer = self.answers.pop(0) if self.answers else None
        if answer is None:
            await asyncio.Future()  # hang like a blocking query with nothing new
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]


async def collect(query: BlockingQuery[Any], count: int) -> list[Any]:
    out = []
    async for data in query.changes():
        out.append(data)
        if len(out) == count:
            break
    return out


def run(coro: Any) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(10):
            return await coro

    return asyncio.run(bounded())


def test_unchanged_answers_are_not_yielded() -> None:
    script = Script((5, "a"), (6, "a"), (7, "a"), (8, "b"))
    got = run(collect(BlockingQuery("q", script, min_interval=0), 2))
    assert got == ["a", "b"]
    assert script.sent == [0, 5, 6, 7]


def test_backwards_index_starts_over_from_one() -> None:
    script = Script((50, "a"), (3, "b"), (4, "c"))
    run(collect(BlockingQuery("q", script, min_interval=0), 3))
    assert script.sent == [0, 50, 1]


def test_fetches_are_rate_limited() -> None:
    script = Script((1, "a"), (2, "b"), (3, "c"))
    run(collect(BlockingQuery("q", script, min_interval=0.05), 3))
    gaps = [b - a for a, b in zip(script.times, script.times[1:], strict=False)]
    assert all(gap >= 0.045 for gap in gaps), gaps


def test_errors_are_retried_reported_and_restart_without_an_index() -> None:
    errors: list[Exception] = []
    recovered: list[bool] = []
    script = Script((9, "a"), ConsulUnavailable("down"), ConsulDenied("no"), (2, "b"))
    query = BlockingQuery(
        "q",
        script,
        min_interval=0,
        backoff_initial=0.001,
        backoff_max=0.01,
        on_error=errors.append,
        on_success=lambda: recovered.append(True),
    )
    got = run(collect(query, 2))
    assert got == ["a", "b"]
    assert [type(e) for e in errors] == [ConsulUnavailable, ConsulDenied]
    assert script.sent == [0, 9, 0, 0]  # after an error: no index (Consul may have restarted lower)
    assert recovered


def test_other_exceptions_are_not_swallowed() -> None:
    script = Script((1, "a"), RuntimeError("bug"))
    with pytest.raises(RuntimeError):
        run(collect(BlockingQuery("q", script, min_interval=0), 2))
