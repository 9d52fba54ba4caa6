"""The bridge from the synchronous SDK to the event loop: a blocking iterator read by a thread.

The ``docker`` SDK's event stream is a blocking generator over an HTTP response. One daemon thread reads
it and hands each item to the loop; closing the response (the caller's job) wakes the thread at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Iterable
from typing import Any, TypeVar

__all__ = ["ThreadFailed", "read_in_thread"]

T = TypeVar("T")


class ThreadFailed(Exception):
    """The reading thread's iterator raised; ``__cause__`` is what it raised."""


class _End:
    """The iterator is exhausted, or (with ``error``) it raised."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error


async def read_in_thread(items: Iterable[T], name: str) -> AsyncGenerator[T, None]:
    """Yield what a thread reads from ``items``; raise ThreadFailed from what the iterator raised."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def pump() -> None:
        last: Any = _End()
        try:
            for item in items:
                loop.call_soon_threadsafe(queue.put_nowait, item)
        except Exception as exc:  # the stream broke; the consumer raises it
            last = _End(exc)
        with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
            loop.call_soon_threadsafe(queue.put_nowait, last)

    threading.Thread(target=pump, name=name, daemon=True).start()
    while True:
        got = await queue.get()
        if not isinstance(got, _End):
            yield got
        elif got.error is None:
            return
        else:
            raise ThreadFailed(str(got.error)) from got.error
