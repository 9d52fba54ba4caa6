"""Showing the board: a rich live view in a terminal, or one plain line per event."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .board import Board, Event, describe

__all__ = ["show"]

COLOURS = {"passing": "green", "warning": "yellow", "critical": "red", "gone": "dim", "unregistered": "dim"}
EVENT_LINES = 10


def line(event: Event) -> str:
    """The plain form of an event."""
    return f"[{event.at:7.2f}s] {event.text}"


@contextlib.contextmanager
def show(board: Board, *, plain: bool, help_text: str, out: TextIO = sys.stdout) -> Iterator[None]:
    """Draw the board while the block runs: live in a terminal, else (or with ``plain``) line by line."""
    if plain or not out.isatty():

        def emit(event: Event) -> None:
            print(line(event), file=out, flush=True)

        board.listeners.append(emit)
        try:
            yield
        finally:
            board.listeners.remove(emit)
        return
    console = Console(file=out)
    with Live(get_renderable=lambda: _render(board, help_text), console=console, refresh_per_second=8):
        yield
    # The last events stay on screen after the live view ends.
    for event in list(board.events)[-EVENT_LINES:]:
        console.print(line(event), markup=False, highlight=False)


def _render(board: Board, help_text: str) -> Group:
    table = Table(title="prime service", expand=False)
    for column in ("replica", "port", "health in Consul", "requests via nginx", "share"):
        table.add_column(column, justify="right" if column in ("port", "requests via nginx") else "left")
    total = sum(r.served for r in board.rows.values()) or 1
    for row in board.rows.values():
        name = row.replica.name + ("" if row.running else " (killed)")
        health = Text(row.health, style=COLOURS.get(row.health, ""))
        share = "█" * round(30 * row.served / total)
        table.add_row(name, str(row.replica.port), health, str(row.served), share)
    header = Text(
        f"nginx {board.nginx_url}   reloads: {board.reloads}   failed requests: {board.errors}", style="bold"
    )
    last = board.last_change
    change = Text("last change: " + (describe(last) if last else "none yet"), style="cyan")
    events = Text("\n".join(line(e) for e in list(board.events)[-EVENT_LINES:]), style="dim")
    return Group(header, table, change, events, Text(help_text, style="italic"))
