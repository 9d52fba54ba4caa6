"""A one-slot channel: the reader always gets the newest value, older ones are dropped."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

__all__ = ["Latest"]

T = TypeVar("T")


class Latest(Generic[T]):
    """Holds the newest value and a version number; ``wait_newer`` blocks until the version moves on."""

    def __init__(self) -> None:
        self._value: T | None = None
        self.version = 0
        self._changed = asyncio.Event()

    def publish(self, value: T) -> None:
        """Replace the value and wake every waiter."""
        self._value = value
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def value(self) -> T | None:
        """The newest value, or None before the first."""
        return self._value

    async def wait_newer(self, version: int) -> tuple[int, T]:
        """Return (version, value) as soon as the version is greater than ``version``."""
        while self.version <= version:
            await self._changed.wait()
        assert self._value is not None
        return self.version, self._value
