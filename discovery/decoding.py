"""JSON answers from Consul, decoded without holding up the event loop.

``json.loads`` is one call into C that keeps the GIL until it returns: run in a thread, an 8 MB answer
still stops the event loop for its whole decode (measured: 410 ms of loop lag for 410 ms of decoding).
``loads_yielding`` decodes the outer two levels item by item, each with the same C decoder, so a thread
running it gives the GIL back between items; ``decode`` runs it in a thread for large bodies only.
An ``item`` hook may replace each item of the second level as it is decoded (or leave it out with
``DROP``), so a large answer of which little is needed never exists whole in memory.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["DROP", "LARGE", "Hook", "Path", "decode", "loads_yielding"]

LARGE = 64 * 1024  # bodies from this size on are decoded in a thread
_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
DEPTH = 2  # containers this deep are decoded item by item; deeper ones in one call
DROP = object()  # what an item hook returns to leave an item out
Path = tuple[str | int, ...]
Hook = Callable[[Path, Any], Any]  # (keys and indexes from the top, item) -> what to keep instead


def _keep(path: Path, value: Any) -> Any:
    return value


def loads_yielding(text: str, item: Hook = _keep) -> Any:
    """``json.loads(text)``, the same value and errors, decoded one item of the outer levels at a time.

    ``item(path, value)`` is called with each item of the second level (``path`` has two keys or
    indexes) and its result kept instead, unless it is ``DROP``.
    """
    value, end = _value(text, _skip(text, 0), DEPTH, item, ())
    end = _skip(text, end)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def _value(text: str, i: int, depth: int, item: Hook, path: Path) -> tuple[Any, int]:
    if depth > 0 and text.startswith("[", i):
        return _array(text, i + 1, depth - 1, item, path)
    if depth > 0 and text.startswith("{", i):
        return _object(text, i + 1, depth - 1, item, path)
    value, end = _DECODER.raw_decode(text, i)
    return (item(path, value) if len(path) == DEPTH else value), end


def _array(text: str, i: int, depth: int, item: Hook, path: Path) -> tuple[list[Any], int]:
    out: list[Any] = []
    i = _skip(text, i)
    if text.startswith("]", i):
        return out, i + 1
    while True:
        value, i = _value(text, i, depth, item, (*path, len(out)))
        if value is not DROP:
            out.append(value)
        i = _skip(text, i)
        if text.startswith("]", i):
            return out, i + 1
        i = _skip(text, _expect(text, i, ","))


def _object(text: str, i: int, depth: int, item: Hook, path: Path) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    i = _skip(text, i)
    if text.startswith("}", i):
        return out, i + 1
    while True:
        if not text.startswith('"', i):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, i)
        key, i = _DECODER.raw_decode(text, i)
        i = _skip(text, _expect(text, _skip(text, i), ":"))
        value, i = _value(text, i, depth, item, (*path, key))
        if value is not DROP:
            out[key] = value
        i = _skip(text, i)
        if text.startswith("}", i):
            return out, i + 1
        i = _skip(text, _expect(text, i, ","))


def _skip(text: str, i: int) -> int:
    return _SPACE.match(text, i).end()  # type: ignore[union-attr]


def _expect(text: str, i: int, char: str) -> int:
    if not text.startswith(char, i):
        raise json.JSONDecodeError(f"Expecting {char!r} delimiter", text, i)
    return i + 1


async def decode(text: str, item: Hook | None = None) -> Any:
    """The JSON value of a body: small ones decoded here, large ones in a thread, item by item."""
    if len(text) < LARGE:
        return json.loads(text) if item is None else loads_yielding(text, item)
    return await asyncio.to_thread(loads_yielding, text, item or _keep)
