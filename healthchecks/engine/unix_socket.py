"""Why a container engine's unix socket cannot be reached, in words that say what to start.

The engine API of Podman is served only while ``podman system service`` (or its systemd socket unit)
runs, and Docker's only while dockerd runs: a missing socket is the usual first-day problem, and the
SDK reports it as a tuple of nested exceptions. ``socket_problem`` turns it into one sentence.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["socket_path", "socket_problem"]


def socket_path(url: str) -> Path | None:
    """The file of a ``unix://`` engine URL; None for TCP URLs."""
    if not url.startswith("unix://"):
        return None
    return Path(url.removeprefix("unix://") or "/")


def _what_to_start(url: str, path: Path) -> str:
    """The command that serves this socket, guessed from its path."""
    if "podman" in path.name or "podman" in str(path.parent):
        return (
            f"start Podman's API service (`podman system service --time=0 {url} &`, "
            "or `systemctl enable --now podman.socket`)"
        )
    if "docker" in path.name:
        return "start Docker (`systemctl start docker`, or `dockerd &`)"
    return (
        f"start the engine's API service on it (Podman: `podman system service --time=0 {url} &`; "
        "Docker: `systemctl start docker`)"
    )


def socket_problem(url: str) -> str | None:
    """One sentence when a ``unix://`` engine socket is absent or not a socket; None when it is there."""
    path = socket_path(url)
    if path is None:
        return None
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"The container engine socket {path} does not exist: {_what_to_start(url, path)}."
    except OSError as exc:
        return f"The container engine socket {path} cannot be read ({exc.strerror})."
    if not stat.S_ISSOCK(mode):
        return f"The container engine socket {path} is not a socket: {_what_to_start(url, path)}."
    return None
