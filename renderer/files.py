"""Atomic file replacement: a temp file in the destination's folder, fsync, rename (and fsync the folder, when asked)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from plumbing.errors import OutputError

__all__ = ["Written", "read_bytes", "remove", "write_atomic"]


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError(f"Cannot read {path}: {exc.strerror or exc}.") from exc


class Written:
    """The bytes last written to each file, trusted instead of a read while the file is the one written.

    Every change compares a destination's bytes with the new render: at 5,000 upstreams a read of
    700 KB per flip. A file replaced, rewritten or touched by anyone else has another inode, size,
    mtime or ctime, and is read again.
    """

    def __init__(self) -> None:
        self._known: dict[Path, tuple[tuple[int, ...], bytes]] = {}

    def remember(self, path: Path, data: bytes) -> None:
        """``data`` is what ``path`` holds now (just written)."""
        try:
            self._known[path] = (_identity(os.stat(path)), data)
        except OSError:
            self._known.pop(path, None)

    def read(self, path: Path) -> bytes | None:
        """``read_bytes(path)``, from memory when the file is still the one last written."""
        known = self._known.get(path)
        if known is not None:
            try:
                if _identity(os.stat(path)) == known[0]:
                    return known[1]
            except OSError:
                pass
            del self._known[path]
        return read_bytes(path)


def _identity(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def write_atomic(
    path: Path, data: bytes, perms: int | None = None, *, durable: bool = True, sync_folder: bool = False
) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mix.

    The temp file is created with mode 0600 and gets ``perms`` (or the replaced file's mode, or 0644)
    only once complete. On any failure the temp file is removed and the old file is untouched.
    ``durable`` fsyncs the data before the rename, so that a crash can leave the old file or the new
    one, never an empty or partial one; ``durable=False`` skips it (still atomic, not crash-proof): for
    copies nobody depends on. ``sync_folder`` also fsyncs the folder after the rename, so that the new
    file itself survives a crash.

    Why the folder is not synced by default: after a crash the old, complete file is what nginx last
    accepted, and the sidecar renders and writes everything again at start-up. Syncing the folder on
    every change waits for a second journal commit: little at the median, but the 90th percentile of a
    change went from 7.9 to 13.1 ms on a busy disk (docs/operations.md, "Durability").
    """
    mode = perms if perms is not None else _mode_of(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"Cannot create a temporary file beside {path}: {exc.strerror or exc}.") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    if sync_folder:
        _fsync_dir(path.parent)


def remove(path: Path) -> None:
    """Remove a file if it exists (used to restore 'there was no file')."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot remove {path}: {exc.strerror or exc}.") from exc
    _fsync_dir(path.parent)


def _mode_of(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o644


def _fsync_dir(folder: Path) -> None:
    # Makes the rename durable; some filesystems refuse fsync on a folder, which is harmless here.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
