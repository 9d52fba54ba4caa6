"""The files one apply changes: written atomically and checked, put back when the check fails.

``apply`` decides what to write and which way it goes to nginx; this carries out the writing, keeping
DEST.bak where asked (``backups``) and the previous bytes of each file for ``restore``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from plumbing.errors import NginxCheckFailed, OutputError

from . import backups
from .files import remove, write_atomic
from .nginx import Nginx

__all__ = ["Change", "restore", "write_and_check", "write_state_file", "write_with_backups"]

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
    changes: Sequence[Change], nginx: Nginx, *, check: bool, restoring: Sequence[Change] = ()
) -> list[Change]:
    """Write the changes and check them (when ``check``); on any failure restore all of them."""
    written: list[Change] = list(restoring)
    try:
        for change in changes:
            write_atomic(change.destination, change.new, change.perms, durable=change.durable)
            written.append(change)
        if check:
            await nginx.check()
    except (NginxCheckFailed, OutputError):
        restore(written)
        raise
    except BaseException:
        # Cancelled (SIGTERM) between write and check: leave nothing unchecked behind.
        restore(written)
        raise
    return written


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
    changes: list[Change], state_file: list[Change], nginx: Nginx, *, check: bool
) -> tuple[list[Change], backups.Pending]:
    """``write_and_check``, with DEST.bak of each previous file linked where asked (``backups``): the
    caller keeps them once the new files are accepted."""
    pending = backups.Pending(
        [(c.destination, c.old, c.perms) for c in changes if c.backup and c.old is not None]
    )
    try:
        written = await write_and_check(changes + state_file, nginx, check=check)
    except BaseException:
        pending.drop()
        raise
    return written, pending


def write_state_file(path: Path, make: Callable[[], bytes]) -> None:
    """After a push: the state file, for workers that start later (a failure is repaired by drift)."""
    try:
        # Read by nginx's workers as their own user; not fsynced (docs/operations.md, "Durability").
        write_atomic(path, make(), 0o644, durable=False)
    except OutputError as exc:
        log.warning("Runtime state file not written (nginx holds the pushed state): %s", exc)
