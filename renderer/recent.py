"""A mapping that keeps only what the last render used: the memory of the render caches.

Why not a new dict per render: a hit would then store its key again, and a render of thousands of
hits would leave thousands of new objects for the garbage collector to walk. Here a hit only stamps
its entry; ``end`` drops what the render did not use.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["Recent"]

V = TypeVar("V")


class Recent(Generic[V]):
    """Values by key, with a render stamp: after ``end``, only those the render used remain."""

    def __init__(self) -> None:
        self._items: dict[Hashable, V] = {}
        # The render that last used each key: ints are no work for the garbage collector, a [stamp,
        # value] list per entry would be.
        self._used_in: dict[Hashable, int] = {}
        self._render = 0
        self._used = 0

    def __len__(self) -> int:
        return len(self._items)

    def begin(self) -> None:
        """A render starts."""
        self._render += 1
        self._used = 0

    def get(self, key: Hashable) -> V | None:
        """The value, marked as used by this render; None when there is none."""
        value = self._items.get(key)
        if value is not None and self._used_in[key] != self._render:
            self._used_in[key] = self._render
            self._used += 1
        return value

    def put(self, key: Hashable, value: V) -> None:
        """Set the value, marked as used by this render."""
        if self._used_in.get(key) != self._render:
            self._used += 1
        self._items[key] = value
        self._used_in[key] = self._render

    def end(self) -> None:
        """A render ended (well or not): drop what it did not use."""
        if len(self._items) > self._used:
            stale = [key for key, used in self._used_in.items() if used != self._render]
            for key in stale:
                del self._items[key], self._used_in[key]
