"""The demo's temporary folder: everything it starts lives under it, and removing it removes the rest."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from harness.process import kill_mentioning

__all__ = ["make_workdir", "remove_workdir"]

MAX_BASE = 40  # unix socket paths are limited to 108 bytes; Podman's live a few levels down


def make_workdir(env: Mapping[str, str]) -> Path:
    """A new private folder under TMPDIR (or /tmp when TMPDIR is long)."""
    base = env.get("TMPDIR") or "/tmp"
    if len(base) > MAX_BASE or not Path(base).is_dir():
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix="upstreams-demo-", dir=base))


def remove_workdir(path: Path) -> None:
    """Kill what still runs from the folder (conmon, a check script), unmount what is mounted in it,
    and delete it."""
    kill_mentioning(str(path))
    for mount in sorted(_mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path) + "/"
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    # Mount points are octal-escaped in /proc/self/mounts; ours have no spaces, so plain text compares.
    return [fields[1] for line in lines if len(fields := line.split()) > 1 and fields[1].startswith(prefix)]
