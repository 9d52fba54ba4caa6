"""What a conversion could not do: one sentence per part, with the file and line it comes from."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EXIT_MANUAL", "EXIT_OK", "EXIT_UNREADABLE", "Problem", "Unconvertible", "exit_code"]

EXIT_OK, EXIT_MANUAL, EXIT_UNREADABLE = 0, 1, 2


@dataclass(frozen=True, order=True)
class Problem:
    """One part of the input and why it needs a hand (``manual``) or was dropped harmlessly (a note)."""

    file: str
    line: int
    sentence: str
    manual: bool = True
    unreadable: bool = False

    def __str__(self) -> str:
        label = "unreadable" if self.unreadable else "needs a hand" if self.manual else "note"
        return f"{self.file}:{self.line}: {label}: {self.sentence}"


class Unconvertible(Exception):
    """Raised inside the translator for a part with no equivalent; the message is the sentence."""


def exit_code(problems: list[Problem]) -> int:
    """0 when everything converted, 1 when some parts need a hand, 2 when some input was unreadable."""
    if any(p.unreadable for p in problems):
        return EXIT_UNREADABLE
    return EXIT_MANUAL if any(p.manual for p in problems) else EXIT_OK
