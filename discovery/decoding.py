"""JSON answers from Consul, decoded without holding up the event loop.

``json.loads`` is one call into C that keeps the GIL until it returns: run in a thread, an 8 MB answer
still stops the event loop for its whole decode (measured: 410 ms of loop lag for 410 ms of decoding).
``loads_yielding`` decodes the outer two levels item by item, each with the same C decoder, so a thread
running it gives the GIL back between items; ``decode`` runs it in a thread for large bodies only.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

__all__ = ["LARGE", "decode", "loads_yielding"]

LARGE = 64 * 1024  # bodies from this size on are decoded in a thread
_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
DEPTH = 2  # containers this deep are decoded item by item; deeper ones in one call


def loads_yielding(text: str) -> Any:
    """``json.loads(text)``, the same value and errors, decoded one item of the outer levels at a time."""
    value, end = _value(text, _SPACE.match(text, 0).end(), DEPTH)  # type: ignore[union-attr]
    end = _SPACE.match(text, end).end()  # type: ignore[union-attr]
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def _value(text: str, i: int, depth: int) -> tuple[Any, int]:
    if depth > 0 and text.startswith("[", i):
        return _array(text, i + 1, depth - 1)
    if depth > 0 and text.startswith("{", i):
        return _object(text, i + 1, depth - 1)
    return _DECODER.raw_decode(text, i)


def _array(text: str, i: int, depth: int) -> tuple[list[Any], int]:
    out: list[Any] = []
    i = _skip(text, i)
    if text.startswith("]", i):
        return out, i + 1
    while True:
        value, i = _value(text, i, depth)
        out.append(value)
        i = _skip(text, i)
        if text.startswith("]", i):
            return out, i + 1
        i = _skip(text, _expect(text, i, ","))


def _object(text: str, i: int, depth: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    i = _skip(text, i)
    if text.startswith("}", i):
        return out, i + 1
    while True:
        if not text.startswith('"', i):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, i)
        key, i = _DECODER.raw_decode(text, i)
        i = _skip(text, _expect(text, _skip(text, i), ":"))
        out[key], i = _value(text, i, depth)
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


async def decode(text: str) -> Any:
    """The JSON value of a body: small ones decoded here, large ones in a thread, item by item."""
    if len(text) < LARGE:
        return json.loads(text)
    return await asyncio.to_thread(loads_yielding, text)
