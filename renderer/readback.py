"""The rendered texts read back between applies, and the way a change goes to nginx (``dynamic.route``).

``Context`` is what applies remember between rounds; ``route_of`` reads a change's old and new texts
against the last parses and asks ``dynamic.route`` which way it goes. After a flip that reading costs
what changed (``texts.reparse``) and runs on the event loop; anything more (a first render, a
structural change that reads a whole text again) runs in a thread, so the loop never waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .changes import Change
from .config import TemplateConfig
from .dynamic.pusher import Pusher
from .dynamic.route import Route, route
from .dynamic.texts import ParsedFile, parse, reparse
from .files import Written

__all__ = ["Context", "parses", "route_of"]

Renders = Sequence[tuple[TemplateConfig, str]]


@dataclass
class Context:
    """What applies remember between rounds: the check policy, whether a check passed, the last parses."""

    check: str = "always"  # "structural": check only structural changes (NginxConfig.check)
    pusher: Pusher | None = None  # dynamic mode
    proven: bool = False  # a check passed since the config was loaded: later server-only changes need none
    parsed: dict[Path, ParsedFile] = field(default_factory=dict)  # the newest text of each destination
    pending: asyncio.Future[None] | None = None  # the state file still being written after a push
    written: Written = field(default_factory=Written)  # the destinations' bytes as last written

    @property
    def reads_texts(self) -> bool:
        """Whether the route needs the texts parsed (the old behaviour, checking always, does not)."""
        return self.pusher is not None or self.check != "always"

    def parse(self, path: Path, text: str) -> ParsedFile:
        """The parse of ``text`` (the file at ``path``), read against the last one of that file."""
        return parse(text, self.parsed.get(path))

    def reparse(self, path: Path, text: str) -> ParsedFile | None:
        """``parse``, when it costs only what changed since the last one; else None."""
        previous = self.parsed.get(path)
        return None if previous is None else reparse(text, previous)

    async def settled(self) -> None:
        """Wait for the state file written after the last push (before anything reads or writes it)."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            await pending


async def route_of(ctx: Context, renders: Renders, changes: Sequence[Change]) -> Route:
    """Which way this change goes: on the loop when reading it back is cheap, else in a thread."""
    quick = _route(ctx, renders, changes, ctx.reparse)
    if quick is not None:
        return quick
    # Reading the texts back is milliseconds after a flip, but a whole text at a first render.
    found = await asyncio.to_thread(_route, ctx, renders, changes, ctx.parse)
    assert found is not None
    return found


def _route(
    ctx: Context,
    renders: Renders,
    changes: Sequence[Change],
    read: Callable[[Path, str], ParsedFile | None],
) -> Route | None:
    if not ctx.reads_texts:
        return Route(None, True, None)  # checking always, no dynamic mode: nothing to read
    if not ctx.proven and ctx.pusher is None:
        # A first render is checked whatever it is: read it after its reload, not before its write.
        return Route(None, True, None)
    old: dict[Path, ParsedFile | None] = {}
    for c in changes:
        old[c.destination] = None
        if c.old is not None:
            old[c.destination] = read(c.destination, c.old.decode("utf-8", "replace"))
            if old[c.destination] is None:
                return None  # not cheap: the caller reads in a thread
    after = _parses(ctx, renders, read)
    if after is None:
        return None
    before = {path: old.get(path, parsed) for path, parsed in after.items()}  # unchanged: old is new
    return route(
        before, after, dynamic=ctx.pusher is not None, check_always=ctx.check == "always", proven=ctx.proven
    )


def parses(ctx: Context, renders: Renders) -> dict[Path, ParsedFile]:
    """Each new text parsed (once: the next round's old text is this round's new one)."""
    found = _parses(ctx, renders, ctx.parse)
    assert found is not None
    return found


def _parses(
    ctx: Context, renders: Renders, read: Callable[[Path, str], ParsedFile | None]
) -> dict[Path, ParsedFile] | None:
    for template, text in renders:
        parsed = read(template.destination, text)
        if parsed is None:
            return None  # those before keep their new parse: reading them again returns it at once
        ctx.parsed[template.destination] = parsed
    return {t.destination: ctx.parsed[t.destination] for t, _ in renders}
