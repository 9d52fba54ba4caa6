"""``--interactive``: single keys drive the replicas (k/s/f/r and a replica number; q quits)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import termios
import tty
from collections.abc import Iterator

from .actions import Actions
from .process import PartFailed

__all__ = ["HELP", "read_keys", "terminal_keys"]

HELP = "keys: k<N> kill, s start, f<N> fail, r<N> recover replica N; q quit"


@contextlib.contextmanager
def terminal_keys() -> Iterator[None]:
    """Keys arrive one by one (no Enter, no echo) while the block runs; the terminal is restored after."""
    fd = sys.stdin.fileno()
    if not sys.stdin.isatty():
        raise PartFailed("--interactive needs a terminal on stdin.")
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def read_keys(actions: Actions) -> None:
    """Act on keys until q (then return) or cancellation."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()
    fd = sys.stdin.fileno()
    loop.add_reader(fd, lambda: queue.put_nowait(sys.stdin.read(1)))
    pending = ""
    try:
        while (key := (await queue.get()).lower()) not in ("q", ""):
            if key == "s":
                await actions.start()
            elif key in "kfr":
                pending = key
            elif key.isdigit() and pending:
                verb = {"k": actions.kill, "f": actions.fail, "r": actions.recover}[pending]
                pending = ""
                await verb(f"prime-{key}")
    finally:
        loop.remove_reader(fd)
