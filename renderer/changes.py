"""The files one apply changes: written atomically and checked, put back when the check fails.

``apply`` decides what to write and which way it goes to nginx; this carries out the writing, keeping
DEST.bak where asked (``backups``) and the previous bytes of each file for ``restore``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from plumbing.errors import NginxCheckFailed, OutputError

from . import backups
from .files import remove, write_atomic
from .nginx import Nginx

__all__ = ["Change", "after_push", "restore", "write_and_check", "write_state_file", "write_with_backups"]

log = logging.getLogger("renderer.apply")  # moved out of apply: its lines keep their logger name


@dataclass(frozen=True)
class Change:
    """One file of an apply: its new bytes, its previous ones (None: there was no file), how to write it."""

    destination: Path
    new: bytes
    old: bytes | None
    perms: int | None = None
    backup: bool = False
    durable: bool = True


async def write_and_check(
    changes: Sequence[Change],
    nginx: Nginx,
    *,
    check: bool,
    restoring: Sequence[Change] = (),
    alongside: Callable[[], Awaitable[list[Change]]] | None = None,
) -> list[Change]:
    """Write the changes and check them (when ``check``); on any failure restore all of them.

    ``alongside``: makes more files to write while nginx checks these (nginx -t reads none of them).
    """
    written: list[Change] = list(restoring)
    try:
        for change in changes:
            write_atomic(change.destination, change.new, change.perms, durable=change.durable)
            written.append(change)
        await _check_alongside(nginx if check else None, alongside, written)
    except (NginxCheckFailed, OutputError):
        restore(written)
        raise
    except BaseException:
        # Cancelled (SIGTERM) between write and check: leave nothing unchecked behind.
        restore(written)
        raise
    return written


async def _check_alongside(
    nginx: Nginx | None, alongside: Callable[[], Awaitable[list[Change]]] | None, written: list[Change]
) -> None:
    """The check, and the files ``alongside`` makes written meanwhile; the first failure raised, once
    both are done (nothing is written after a failed check is restored)."""

    async def extra() -> None:
        if alongside is not None:
            for change in await alongside():
                write_atomic(change.destination, change.new, change.perms, durable=change.durable)
                written.append(change)

    if nginx is None:
        await extra()
        return
    if alongside is None:
        await nginx.check()  # nothing to make meanwhile: no task of its own
        return
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(nginx.check())
            tg.create_task(extra())
    except BaseExceptionGroup as group:
        raise group.exceptions[0] from None


def write_all(changes: Sequence[Change]) -> list[Change]:
    """Write the changes (blocking: run in a thread); on any failure restore them and raise."""
    written: list[Change] = []
    try:
        for change in changes:
            write_atomic(change.destination, change.new, change.perms, durable=change.durable)
            written.append(change)
    except BaseException:
        restore(written)
        raise
    return written


def start_writes(changes: list[Change]) -> tuple[asyncio.Future[list[Change]], backups.Pending]:
    """``write_with_backups`` with no check, written and synced in a thread (for a push, which goes out
    meanwhile); the backups are dropped if the writes fail."""
    pending = backups.Pending(
        [(c.destination, c.old, c.perms) for c in changes if c.backup and c.old is not None]
    )
    writing = asyncio.ensure_future(asyncio.to_thread(write_all, changes))

    def done(future: asyncio.Future[list[Change]]) -> None:
        if future.cancelled() or future.exception() is not None:
            pending.drop()

    writing.add_done_callback(done)
    return writing, pending


def restore(written: Sequence[Change]) -> None:
    """Put back the previous bytes of files written in a failed round."""
    for change in reversed(written):
        dest = change.destination
        try:
            if change.old is None:
                remove(dest)
            else:
                # Synced with its folder: after a crash the file nginx refused must not come back as the
                # "previous" bytes of the next round (a change itself needs no folder sync: see files.py).
                write_atomic(dest, change.old, change.perms, sync_folder=True)
        except OutputError as exc:
            log.error("Could not restore %s: %s", dest, exc)


async def write_with_backups(
    changes: list[Change],
    state_file: list[Change],
    nginx: Nginx,
    *,
    check: bool,
    alongside: Callable[[], Awaitable[list[Change]]] | None = None,
) -> tuple[list[Change], backups.Pending]:
    """``write_and_check``, with DEST.bak of each previous file linked where asked (``backups``): the
    caller keeps them once the new files are accepted."""
    pending = backups.Pending(
        [(c.destination, c.old, c.perms) for c in changes if c.backup and c.old is not None]
    )
    try:
        written = await write_and_check(changes + state_file, nginx, check=check, alongside=alongside)
    except BaseException:
        pending.drop()
        raise
    return written, pending


def after_push(kept: backups.Pending, state_file: Path, make: Callable[[], bytes]) -> None:
    """Once a push and its files are done: DEST.bak kept, then the state file written (in a thread)."""
    kept.keep()
    write_state_file(state_file, make)


def write_state_file(path: Path, make: Callable[[], bytes]) -> None:
    """After a push: the state file, for workers that start later (a failure is repaired by drift)."""
    try:
        # Read by nginx's workers as their own user; not fsynced (docs/operations.md, "Durability").
        write_atomic(path, make(), 0o644, durable=False)
    except OutputError as exc:
        log.warning("Runtime state file not written (nginx holds the pushed state): %s", exc)
