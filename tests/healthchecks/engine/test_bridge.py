"""The SDK bridge: a blocking iterator read by a thread, its items and its failure handed to the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from healthchecks.engine.bridge import ThreadFailed, read_in_thread


def test_items_arrive_in_order_and_the_end_ends_the_iteration() -> None:
    async def collect() -> list[int]:
        return [item async for item in read_in_thread(iter(range(5)), "test")]

    assert asyncio.run(collect()) == [0, 1, 2, 3, 4]


def test_what_the_iterator_raises_reaches_the_consumer_after_the_items_before_it() -> None:
    def breaking() -> Iterator[int]:
        yield 1
        raise ConnectionResetError("reset by peer")

    async def collect(seen: list[int]) -> None:
        async for item in read_in_thread(breaking(), "test"):
            seen.append(item)

    seen: list[int] = []
    with pytest.raises(ThreadFailed) as info:
        asyncio.run(collect(seen))
    assert seen == [1]
    assert isinstance(info.value.__cause__, ConnectionResetError)
