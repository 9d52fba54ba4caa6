"""``DEST.bak``, the previous good version of a file, kept by a hard link instead of a copy.

Before a destination is replaced, a second name is linked to its current file; once the new file
is accepted, that name is renamed to ``DEST.bak``. The old bytes are never written again: a copy
was the largest write of a flip at scale (700 KB at 5,000 upstreams, every change). Where a link
cannot be made (a filesystem without hard links, the file just created), the old bytes are
written as before. Nobody reads the copy back, so it is not synced (docs/operations.md,
"Durability").
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from plumbing.errors import OutputError

from .files import write_atomic

__all__ = ["Kept", "Pending", "drop", "keep", "link_previous"]

log = logging.getLogger(__name__)

Kept = dict[Path, Path]  # destination -> a second name of its previous file


def link_previous(destinations: Iterable[Path]) -> Kept:
    """A second name for each destination's current file, made before it is replaced."""
    links: Kept = {}
    for dest in destinations:
        name = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.bak")
        with contextlib.suppress(OSError):  # no link: the old bytes are written instead
            os.link(dest, name)
            links[dest] = name
    return links


def keep(previous: Iterable[tuple[Path, bytes, int | None]], links: Kept) -> None:
    """The new files are accepted: make each ``DEST.bak`` the previous version."""
    for dest, old, perms in previous:
        bak = Path(f"{dest}.bak")
        try:
            link = links.pop(dest, None)
            if link is not None:
                os.replace(link, bak)
            else:
                write_atomic(bak, old, perms, durable=False)
        except (OSError, OutputError) as exc:
            log.warning("Could not keep a backup of %s: %s", dest, exc)
    drop(links)


def drop(links: Kept) -> None:
    """The new files were not accepted (or need no backup): remove the second names."""
    for link in links.values():
        with contextlib.suppress(OSError):
            os.unlink(link)
    links.clear()


class Pending:
    """The backups of one apply, linked before its writes: kept once accepted, else dropped."""

    def __init__(self, previous: list[tuple[Path, bytes, int | None]]) -> None:
        self.previous = previous
        self.links = link_previous(dest for dest, _, _ in previous)

    def keep(self) -> None:
        """The new files are accepted (idempotent)."""
        keep(self.previous, self.links)
        self.previous = []

    def drop(self) -> None:
        """The new files were put back."""
        drop(self.links)
        self.previous = []
