"""Rendered texts read back into their ``upstream`` blocks, incrementally, and the runtime state they say. Pure.

The file is the durable truth: runtime state is always *derived* from the texts just rendered, never
from the catalog. A flip changes one block of a text of thousands, so a text is read against its
previous parse: the first difference is found by comparing chunks (C speed), the block holding it is
read again, and comparing goes on after that block; everything the two texts share is reused as it
is, objects included. A difference outside any block's body (anything structural) reads the text
again from the start, reusing blocks whose bodies are unchanged. Both ways give the same result.
"""

from __future__ import annotations

import bisect
import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from itertools import accumulate, chain
from operator import attrgetter

from .peers import Peer, Upstream, upstream_of

__all__ = ["ParsedFile", "Since", "parse", "reparse", "runtime_state"]

_OPEN = re.compile(r"[ \t]*upstream[ \t]+([^\s{};#\"'\\]+)[ \t]*\{[ \t]*\n")  # matched at a line's start
_BODY = attrgetter("body")
_STEP = 4096  # characters compared at a time while looking for the next difference
_STRIDE = 65536  # ... after skipping equal text this many at a time (larger slices would be mmap'd)
State = dict[str, tuple[Peer, ...]]


@dataclass(frozen=True)
class Since:
    """How a parse differs from the one it was read against: only the blocks at ``touched``.

    The earlier parse is held weakly: a chain of parses must not keep every old text alive.
    """

    previous: weakref.ref[ParsedFile]
    touched: tuple[int, ...]

    def of(self, before: ParsedFile) -> tuple[int, ...] | None:
        """The blocks that may differ from ``before``, or None when this was not read against it."""
        return self.touched if self.previous() is before else None


@dataclass(frozen=True)
class ParsedFile:
    """A rendered text read back: its upstream blocks in order, and the text around their bodies."""

    text: str
    upstreams: tuple[Upstream, ...]
    gaps: tuple[str, ...]  # the text before, between and after the blocks' bodies (one more than blocks)
    derived: State | None = field(default=None, compare=False, repr=False)  # the state, when known ahead
    # Read against an earlier parse (``reread``): that parse, and the blocks read again since it.
    since: Since | None = field(default=None, compare=False, repr=False)

    def skeleton(self, *, hooked_only: bool) -> str:
        """The text with each run of server lines of the chosen upstreams replaced by one mark."""
        shapes = [u.shape(hooked_only=hooked_only) for u in self.upstreams]
        return "".join(g + b for g, b in zip(self.gaps, [*shapes, ""], strict=True))

    @cached_property
    def by_body(self) -> dict[str, Upstream]:
        """Each upstream by its body, for a full reading to reuse."""
        return {u.body: u for u in self.upstreams}

    @cached_property
    def spans(self) -> tuple[list[int], list[int]]:
        """Where each block's body starts, and where it ends, in ``text``."""
        # Gap, body, gap, body, ...: the last gap (after the last body) is not needed.
        bodies = map(len, map(_BODY, self.upstreams))
        ends = list(accumulate(chain.from_iterable(zip(map(len, self.gaps), bodies, strict=False))))
        return ends[0::2], ends[1::2]

    @cached_property
    def state(self) -> State | None:
        """This file's hooked upstreams that can be pushed, with their peers; None when two share a name."""
        return self.derived if self.derived is not None else _state(self.upstreams)


def parse(text: str, previous: ParsedFile | None = None) -> ParsedFile:
    """Read a rendered text's upstream blocks; never raises (unreadable blocks are simply not upstreams).

    ``previous``: the parse of an earlier version of the text, read against (see the module's doc).
    """
    if previous is not None:
        if previous.text == text:
            return previous
        again = _reread(text, previous)
        if again is not None:
            return again
    return _read(text, previous.by_body if previous is not None else {})


def reparse(text: str, previous: ParsedFile) -> ParsedFile | None:
    """``parse(text, previous)`` when it costs what changed (the text equal, or different only inside
    block bodies); None when it would read the whole text again."""
    return previous if previous.text == text else _reread(text, previous)


def _read(text: str, known: dict[str, Upstream]) -> ParsedFile:
    upstreams, gaps, at, pos = [], [], 0, 0
    while (found := _next_block(text, pos)) is not None:
        name, start, end, pos = found
        body = text[start:end]
        cached = known.get(body)
        upstream = cached if cached is not None and cached.name == name else upstream_of(name, body)
        if upstream is None:
            continue
        upstreams.append(upstream)
        gaps.append(text[at:start])
        at = end
    gaps.append(text[at:])
    return ParsedFile(text, tuple(upstreams), tuple(gaps))


def _reread(text: str, previous: ParsedFile) -> ParsedFile | None:
    """The parse of ``text`` from ``previous`` when every difference is inside block bodies, else None."""
    old, (starts, ends) = previous.text, previous.spans
    upstreams = list(previous.upstreams)
    touched = []
    i = j = 0  # where comparing goes on, in the old and in the new text
    while (offset := _difference(old, i, text, j)) is not None:
        at_old, at_new = i + offset, j + offset
        k = bisect.bisect_right(starts, at_old) - 1
        if k < 0 or at_old > ends[k]:
            return None  # outside every body: read it all again
        start = starts[k] + (j - i)
        closing = _closing_line(text, start)
        if closing is None or closing[0] < at_new or (closing[0], ends[k]) == (at_new, at_old):
            return None  # the block's own closing line changed
        block = upstream_of(upstreams[k].name, text[start : closing[0]])
        if block is None:
            return None
        upstreams[k] = block
        touched.append(k)
        i, j = ends[k], closing[0]
    derived = _derive(previous, [(previous.upstreams[k], upstreams[k]) for k in touched])
    parsed = ParsedFile(
        text, tuple(upstreams), previous.gaps, derived, Since(weakref.ref(previous), tuple(touched))
    )
    # Where the blocks are, from the previous text's: shifted by how much each read block grew.
    parsed.__dict__["spans"] = _shifted(
        previous.spans, [(k, len(upstreams[k].body) - len(previous.upstreams[k].body)) for k in touched]
    )
    return parsed


def _shifted(spans: tuple[list[int], list[int]], grown: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """The spans of a text whose blocks ``k`` grew by ``d`` characters, for each (k, d) in order."""
    starts, ends = list(spans[0]), list(spans[1])
    shift, at = 0, 0
    for k, delta in [*grown, (len(starts), 0)]:
        if shift:
            # Blocks between the last grown one and this one move by what grew before them.
            starts[at : k + 1] = [x + shift for x in starts[at : k + 1]]
            ends[at:k] = [x + shift for x in ends[at:k]]
        shift += delta
        if k < len(ends):
            ends[k] += shift
        at = k + 1
    return starts, ends


def _derive(previous: ParsedFile, replaced: list[tuple[Upstream, Upstream]]) -> State | None:
    """The new state from the previous one when only peers changed (no hook came or went), else None."""
    old = previous.state
    if old is None:
        return None
    new = dict(old)
    for before, after in replaced:
        if before.hooked != after.hooked:
            return None  # which names are hooked changed: duplicates must be looked for again
        if after.pushable:
            new[after.name] = after.peers
        else:
            new.pop(after.name, None)
    return new


def _difference(a: str, i: int, b: str, j: int) -> int | None:
    """The offset of the first difference between a[i:] and b[j:]; None when they are equal."""
    offset = _equal_strides(a, i, b, j)
    while True:
        chunk_a, chunk_b = a[i + offset : i + offset + _STEP], b[j + offset : j + offset + _STEP]
        if chunk_a != chunk_b:
            break
        if len(chunk_a) < _STEP:
            return None
        offset += _STEP
    low, high = 0, min(len(chunk_a), len(chunk_b))  # the first index where the chunks differ
    while low < high:
        middle = (low + high) // 2
        if chunk_a[: middle + 1] == chunk_b[: middle + 1]:
            low = middle + 1
        else:
            high = middle
    return offset + low


def _equal_strides(a: str, i: int, b: str, j: int) -> int:
    """How far a[i:] and b[j:] are equal in whole strides: a flip's text is compared at 64 KB a step
    (0.15 ms a megabyte, 0.35 at 4 KB), then narrowed down at 4 KB, then to the character."""
    offset = 0
    while True:
        chunk = a[i + offset : i + offset + _STRIDE]
        if len(chunk) < _STRIDE or chunk != b[j + offset : j + offset + _STRIDE]:
            return offset
        offset += _STRIDE


def _next_block(text: str, pos: int) -> tuple[str, int, int, int] | None:
    """The next ``upstream NAME {`` block from ``pos``: its name, its body's span, where to go on."""
    while (i := text.find("upstream", pos)) >= 0:
        opening = _OPEN.match(text, text.rfind("\n", 0, i) + 1)
        if opening is None or opening.end(1) < i:
            pos = i + 8  # "upstream" inside some other line (the hook's require, a comment, ...)
            continue
        end = _closing_line(text, opening.end())
        if end is None:
            return None  # never closed: not a block we can read, nor is anything after it
        return opening.group(1), opening.end(), end[0], end[1]
    return None


def _closing_line(text: str, start: int) -> tuple[int, int] | None:
    """(start, end) of the first line from ``start`` that is only a closing brace (and blanks)."""
    at = start
    while (j := text.find("}", at)) >= 0:
        line_start = text.rfind("\n", start - 1, j) + 1
        line_end = text.find("\n", j)
        line_end = len(text) if line_end < 0 else line_end
        if text[line_start:line_end].strip(" \t") == "}":
            return line_start, line_end
        at = j + 1
    return None


def _state(upstreams: Iterable[Upstream]) -> State | None:
    state: State = {}
    seen: set[str] = set()
    for upstream in upstreams:
        if not upstream.hooked:
            continue
        folded = upstream.name.lower()  # nginx compares upstream names without case
        if folded in seen:
            return None
        seen.add(folded)
        if upstream.pushable:
            state[upstream.name] = upstream.peers
    return state


def runtime_state(files: Iterable[ParsedFile]) -> State | None:
    """Every hooked upstream of these files that can be pushed, with its peers; None when two share a name."""
    files = list(files)
    if len(files) == 1:
        return files[0].state
    states = [f.state for f in files]
    if any(s is None for s in states):
        return None
    return _state(u for f in files for u in f.upstreams)  # names may repeat across files, too
