"""One progress bar per scenario (rich), and a note line under it saying what runs now."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["Bars", "Steps"]


class Steps:
    """The bar of one scenario."""

    def __init__(self, progress: Progress | None, name: str, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task(name, total=total, note="") if progress else None

    def advance(self, n: int = 1, note: str | None = None) -> None:
        if self.progress is not None and self.task is not None:
            if note is None:
                self.progress.advance(self.task, n)
            else:
                self.progress.update(self.task, advance=n, note=note)

    def note(self, text: str) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, note=text)

    def done(self) -> None:
        if self.progress is not None and self.task is not None:
            total = self.progress.tasks[self.task].total or 0
            self.progress.update(self.task, completed=total, note="done")


class Bars:
    """The progress display of a run; ``quiet`` shows nothing (the test suite's smoke run)."""

    def __init__(self, quiet: bool = False) -> None:
        self.console = Console(stderr=True)
        self.progress = (
            None
            if quiet
            else Progress(
                TextColumn("[bold]{task.description:<12}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[note]}"),
                console=self.console,
            )
        )

    def __enter__(self) -> Bars:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def scenario(self, name: str, total: int) -> Steps:
        return Steps(self.progress, name, total)

    def log(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text)
