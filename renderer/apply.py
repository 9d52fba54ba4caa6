"""Applying renders safely: compare bytes, write atomically, check, reload; on failure restore.

Nothing that fails the check stays on disk: the previous bytes of every file written in this round
are put back (or the file removed if there was none), so the live config is the last good one.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from plumbing.errors import NginxCheckFailed, OutputError

from .config import TemplateConfig
from .files import read_bytes, remove, write_atomic
from .nginx import Nginx

__all__ = ["Outcome", "apply_renders", "restore"]

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    """What an apply did."""

    UNCHANGED = "unchanged"
    RELOADED = "reloaded"


@dataclass(frozen=True)
class _Change:
    template: TemplateConfig
    new: bytes
    old: bytes | None


async def apply_renders(renders: Sequence[tuple[TemplateConfig, str]], nginx: Nginx) -> Outcome:
    """Write what changed, check it, and reload; raise (after restoring) if the check fails.

    Raises NginxCheckFailed or OutputError with every file back as it was; NginxReloadFailed when
    the new files are valid and in place but nginx could not be told (the caller retries the reload).
    """
    changes = []
    for template, text in renders:
        new = text.encode("utf-8")
        old = read_bytes(template.destination)
        if old != new:
            changes.append(_Change(template, new, old))
    if not changes:
        return Outcome.UNCHANGED
    written: list[_Change] = []
    try:
        for change in changes:
            write_atomic(change.template.destination, change.new, change.template.perms)
            written.append(change)
        await nginx.check()
    except (NginxCheckFailed, OutputError):
        restore(written)
        raise
    except BaseException:
        # Cancelled (SIGTERM) between write and check: leave nothing unchecked behind.
        restore(written)
        raise
    _backup(changes)
    names = ", ".join(str(c.template.destination) for c in changes)
    log.info("Wrote %d changed file(s) (%s); nginx accepted them.", len(changes), names)
    await nginx.reload()
    return Outcome.RELOADED


def restore(written: Sequence[_Change]) -> None:
    """Put back the previous bytes of files written in a failed round."""
    for change in reversed(written):
        dest = change.template.destination
        try:
            if change.old is None:
                remove(dest)
            else:
                # Synced with its folder: after a crash the file nginx refused must not come back as the
                # "previous" bytes of the next round (a change itself needs no folder sync: see files.py).
                write_atomic(dest, change.old, change.template.perms, sync_folder=True)
        except OutputError as exc:
            log.error("Could not restore %s: %s", dest, exc)


def _backup(changes: Sequence[_Change]) -> None:
    """Keep DEST.bak of the previous good version, where asked."""
    for change in changes:
        if change.template.backup and change.old is not None:
            bak = Path(f"{change.template.destination}.bak")
            try:
                # A convenience copy nobody reads back: atomic, not synced (with it a change's 90th
                # percentile went from 7.9 to 19.1 ms on a busy disk; docs/operations.md, "Durability").
                write_atomic(bak, change.old, change.template.perms, durable=False)
            except OutputError as exc:
                log.warning("Could not keep a backup: %s", exc)
