"""Applying renders safely: compare bytes, write atomically, check, reload (or push); on failure restore.

Nothing that fails the check stays on disk: the previous bytes of every file written in this round
(the state file of dynamic mode included) are put back, or the file removed if there was none, so the
live config is the last good one. Which way a change goes (pushed, reloaded with or without the check)
is ``dynamic.route``'s pure decision; this module carries it out.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence

from plumbing.errors import (
    DynamicPushFailed,
    DynamicUpdateInvalid,
    NginxCheckFailed,
    NginxReloadFailed,
)

from . import backups
from .changes import Change, after_push, restore, start_writes, write_and_check, write_with_backups
from .config import TemplateConfig
from .dynamic.document import PeerState
from .dynamic.pusher import Pusher, fallback_reason
from .dynamic.route import Route
from .files import Written, read_bytes
from .nginx import CommandNginx, Nginx, names_master
from .readback import Context, parses, route_of

__all__ = ["Context", "Outcome", "apply_renders", "restore"]

Staged = tuple[int, Callable[[], bytes]]  # a state file's generation, and its bytes when called

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    """What an apply did."""

    UNCHANGED = "unchanged"
    RELOADED = "reloaded"
    PUSHED = "pushed"  # a server-only change went to nginx at runtime: no check, no reload


async def apply_renders(
    renders: Sequence[tuple[TemplateConfig, str]], nginx: Nginx, ctx: Context | None = None
) -> Outcome:
    """Write what changed, then push it or check and reload it; raise (after restoring) if the check fails.

    Raises NginxCheckFailed or OutputError with every file back as it was; NginxReloadFailed when
    the new files are valid and in place but nginx could not be told (the caller retries the reload).
    """
    ctx = ctx or Context()
    await ctx.settled()  # the state file of the last push, before this change reads or writes it
    changes = _changes(renders, ctx.written)
    if not changes:
        await _adopt(ctx, renders)
        return Outcome.UNCHANGED
    if ctx.pusher is not None and not ctx.proven:
        way, staged, written, kept = await _write_unproven(ctx, renders, changes, nginx)
    else:
        way = await route_of(ctx, renders, changes)
        staged = _stage(ctx.pusher, way)
        if ctx.pusher is not None and staged is not None and way.push is not None:
            return await _push_while_writing(ctx, renders, way, staged, changes, nginx)
        state_file = [] if staged is None else [_state_change(ctx.pusher, staged[1]())]
        written, kept = await write_with_backups(changes, state_file, nginx, check=way.check)
    _remember(ctx, changes)
    ctx.proven = ctx.proven or way.check
    kept.keep()  # DEST.bak once the new files are accepted
    verdict = "nginx accepted them" if way.check else "server lines only, no check needed"
    log.info("Wrote %d changed file(s) (%s); %s.", len(changes), _names(changes), verdict)
    await _reload_live(ctx, nginx, renders, way, staged, written, checked=way.check)
    return Outcome.RELOADED


def _remember(ctx: Context, changes: Sequence[Change]) -> None:
    for change in changes:
        ctx.written.remember(change.destination, change.new)


def _names(changes: Sequence[Change]) -> str:
    return ", ".join(str(c.destination) for c in changes)


async def _write_unproven(
    ctx: Context, renders: Sequence[tuple[TemplateConfig, str]], changes: list[Change], nginx: Nginx
) -> tuple[Route, Staged | None, list[Change], backups.Pending]:
    """Dynamic mode before a check has passed (a start): checked and reloaded whatever it says, so
    its texts are read back and its state file made while nginx checks the files (at 5,000
    upstreams, 0.3 s of the first render); the state file is in place before the reload."""
    found: list[tuple[Route, Staged | None]] = []

    async def state_file() -> list[Change]:
        way = await route_of(ctx, renders, changes)
        staged = _stage(ctx.pusher, way)
        found.append((way, staged))
        if staged is None:
            return []
        pusher, make = ctx.pusher, staged[1]
        return [await asyncio.to_thread(lambda: _state_change(pusher, make()))]  # megabytes joined

    written, kept = await write_with_backups(changes, [], nginx, check=True, alongside=state_file)
    way, staged = found[0]
    assert way.check and way.push is None  # nothing proven: route() checks and reloads
    return way, staged, written, kept


async def _push_while_writing(
    ctx: Context,
    renders: Sequence[tuple[TemplateConfig, str]],
    way: Route,
    staged: Staged,
    changes: list[Change],
    nginx: Nginx,
) -> Outcome:
    """A server-only change in dynamic mode, pushed while its files are written and synced.

    The push need not wait for the disk (at 5,000 upstreams the write and its fsync are 3-4 ms of a
    flip's 13): the change is done once both are. A failed push falls back to the reload path, which
    waits for the files; a push whose files could not be written is taken back (the files' state is
    what nginx is told again, by the drift repair), so runtime state still follows the files.
    """
    pusher = ctx.pusher
    assert pusher is not None
    writing, kept = start_writes(changes)
    previous = pusher.expected
    try:
        pushed = await _push(pusher, way, staged[0], _names(changes), nginx)
    finally:
        written = await _written(writing, pusher, previous)  # raises OutputError when not written
    _remember(ctx, changes)
    if not pushed:
        return await _fall_back(ctx, renders, way, staged, written, kept, nginx)
    log.info(
        "Wrote %s; pushed %d changed upstream(s) to nginx (generation %d).",
        _names(changes),
        len(way.push or ()),
        staged[0],
    )
    # In a thread, which the next change waits for, not this one: DEST.bak renamed over the last
    # backup (freeing its blocks: 1.4 ms of the loop at 5,000 upstreams), the state file joined and written.
    loop = asyncio.get_running_loop()
    ctx.pending = loop.run_in_executor(None, after_push, kept, pusher.config.state_file, staged[1])
    return Outcome.PUSHED


async def _written(
    writing: asyncio.Future[list[Change]], pusher: Pusher, previous: PeerState | None
) -> list[Change]:
    """The files written beside a push; if they were not, nginx is set back to what they say."""
    try:
        return await writing
    except BaseException:
        if pusher.expected is not previous:
            pusher.expected = previous  # the push went out: the drift repair takes it back at once
            pusher.wake()
        raise


async def _fall_back(
    ctx: Context,
    renders: Sequence[tuple[TemplateConfig, str]],
    way: Route,
    staged: Staged,
    written: list[Change],
    kept: backups.Pending,
    nginx: Nginx,
) -> Outcome:
    """The push failed: check the written files with their state file, and reload."""
    assert ctx.pusher is not None
    try:
        state_file = [_state_change(ctx.pusher, staged[1]())]
        written = await write_and_check(state_file, nginx, check=True, restoring=written)
    except BaseException:
        kept.drop()
        raise
    kept.keep()
    await _reload_live(ctx, nginx, renders, way, staged, written, checked=True)
    return Outcome.RELOADED


def _changes(renders: Sequence[tuple[TemplateConfig, str]], written: Written) -> list[Change]:
    """The renders whose bytes differ from their destination's."""
    changes = []
    for template, text in renders:
        new = text.encode("utf-8")
        old = written.read(template.destination)
        if old != new:
            changes.append(Change(template.destination, new, old, template.perms, template.backup))
    return changes


async def _adopt(ctx: Context, renders: Sequence[tuple[TemplateConfig, str]]) -> None:
    """The first round with files already in place: runtime state must follow them too."""
    if ctx.pusher is not None and ctx.pusher.expected is None:
        state = (await route_of(ctx, renders, [])).state
        if state is not None:
            await ctx.pusher.adopt(state)


async def _reload_live(
    ctx: Context,
    nginx: Nginx,
    renders: Sequence[tuple[TemplateConfig, str]],
    way: Route,
    staged: Staged | None,
    written: Sequence[Change],
    *,
    checked: bool,
) -> None:
    """Reload nginx with the written files, runtime state to follow once it shows it loaded them."""
    previous = _awaiting_reload(ctx.pusher, way, staged)
    try:
        await _reload(nginx, written, checked=checked)
    except NginxCheckFailed:
        if ctx.pusher is not None and previous is not None:
            ctx.pusher.expected, ctx.pusher.awaiting = previous[0], None  # the files went back too
        raise
    if ctx.reads_texts:
        await asyncio.to_thread(parses, ctx, renders)  # the next change is read against these texts


def _awaiting_reload(
    pusher: Pusher | None, way: Route, staged: Staged | None
) -> tuple[PeerState | None] | None:
    """The checked files and their state file are in place: nginx's next workers load them.

    From now on runtime state is expected to follow them, once nginx shows it loaded them (a failed
    reload never does, and its runtime state is left alone). The previous expectation, to put back.
    """
    if pusher is None or staged is None or way.state is None:
        return None
    previous = (pusher.expected,)
    pusher.commit(way.state, staged[0])
    pusher.reloaded(staged[0])
    return previous


def _stage(pusher: Pusher | None, way: Route) -> Staged | None:
    """The state file's generation and bytes (made when called), or None (no dynamic mode, or no state
    nginx could take)."""
    if pusher is None or way.state is None:
        return None
    try:
        return pusher.stage_lazily(way.state, way.base, way.push)
    except DynamicUpdateInvalid as exc:
        log.warning("Runtime state not written (the files still are, and reloads apply them): %s", exc)
        return None


def _state_change(pusher: Pusher | None, body: bytes) -> Change:
    assert pusher is not None
    path = pusher.config.state_file
    # Read by nginx's workers as their own user. Not fsynced: after a crash it may be old or invalid, and
    # either is safe (invalid: the file's own servers route; old: the sidecar's start or drift check
    # rewrites it), while an fsync of a megabyte per flip is not free.
    return Change(path, body, read_bytes(path), 0o644, durable=False)


async def _push(pusher: Pusher, way: Route, generation: int, names: str, nginx: Nginx) -> bool:
    """Push a server-only change; False (counted, logged) when the reload path must carry it instead."""
    assert way.push is not None and way.state is not None  # a push always comes with its full state
    try:
        await pusher.push(way.push, way.state, generation)
    except DynamicPushFailed as exc:
        if fallback_reason(exc) == "unreachable" and _not_running(nginx):
            # Not started yet (the order operations.md recommends), so its endpoint cannot answer: a
            # state, not a failed push. The reload path says so at INFO; nothing is counted.
            log.debug("nginx is not running, so nothing was pushed: %s", exc)
            return False
        pusher.metrics.dynamic_fallbacks.labels(reason=fallback_reason(exc)).inc()
        log.warning("Wrote %s; the push failed, so nginx reloads them instead: %s", names, exc)
        return False
    pusher.commit(way.state, generation)
    return True


def _not_running(nginx: Nginx) -> bool:
    """Whether nginx is known not to run: its pid file names no nginx master, as reload() finds (unknown: False)."""
    if not isinstance(nginx, CommandNginx) or nginx.config.pid_file is None:
        return False
    return not names_master(nginx.config.pid_file)


async def _reload(nginx: Nginx, written: Sequence[Change], *, checked: bool) -> None:
    """Reload; when the files were not checked and the reload fails, check them after all."""
    try:
        await nginx.reload()
    except NginxReloadFailed:
        if not checked:
            # The restore path stays: what is left in place for a retry (or nginx's start) is checked.
            await write_and_check([], nginx, check=True, restoring=written)
        raise
