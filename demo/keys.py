"""``--interactive``: single keys drive the replicas (k/s/f/r and a replica number; q quits)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import termios
import tty
from collections.abc import Iterator

from harness.process import PartFailed

from .actions import Actions

__all__ = ["HELP", "parse_keys", "read_keys", "terminal_keys"]

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


def parse_keys(pending: str, typed: str) -> tuple[list[tuple[str, str]], str, bool]:
    """Keys typed (in one burst or one by one) -> (actions as (verb, replica number), pending verb, quit).

    Pure, so bursts are tested without a terminal: "f2" typed at once is one action; Enter, spaces and
    unknown keys do nothing; only q ends the demo.
    """
    actions: list[tuple[str, str]] = []
    for key in typed.lower():
        if key == "q":
            return actions, "", True
        if key == "s":
            actions.append(("s", ""))
            pending = ""
        elif key in "kfr":
            pending = key
        elif key.isdigit() and pending:
            actions.append((pending, key))
            pending = ""
    return actions, pending, False


async def read_keys(actions: Actions) -> None:
    """Act on keys until q or the end of input (then return), or cancellation."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()
    fd = sys.stdin.fileno()

    def readable() -> None:
        # os.read, not sys.stdin.read(1): the text layer would buffer the rest of a burst ("f2" -> "2")
        # where the fd no longer looks readable, so the second key waited for the next one.
        try:
            data = os.read(fd, 1024)
        except OSError:
            data = b""
        queue.put_nowait(data.decode(errors="replace"))

    loop.add_reader(fd, readable)
    pending = ""
    verbs = {"k": actions.kill, "f": actions.fail, "r": actions.recover}
    try:
        while typed := await queue.get():  # "" is the end of input
            todo, pending, quit_now = parse_keys(pending, typed)
            for verb, number in todo:
                if verb == "s":
                    await actions.start()
                else:
                    await verbs[verb](f"prime-{number}")
            if quit_now:
                return
    finally:
        loop.remove_reader(fd)
