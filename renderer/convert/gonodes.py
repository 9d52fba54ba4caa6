"""The tree Go's text/template parser builds: frozen nodes (the subset consul-template uses).

Arguments (``Arg``) are the terms of a pipeline; ``Node`` is what a template's body is made of.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Action", "Arg", "Chain", "Cmd", "Comment", "Dot", "Field", "Ident", "If", "Lit", "Node", "Pipe", "Range",
    "Text", "Unsupported", "Var", "With",
]  # fmt: skip


@dataclass(frozen=True)
class Lit:
    """A constant: string, number, bool or nil."""

    value: str | int | float | bool | None


@dataclass(frozen=True)
class Dot:
    """``.``: the current value."""


@dataclass(frozen=True)
class Field:
    """``.A.B``: fields of the current value."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Var:
    """``$x.A``: a variable and the fields read from it (``$`` alone is the root value)."""

    name: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ident:
    """A function name."""

    name: str


@dataclass(frozen=True)
class Chain:
    """``(pipeline).A`` or ``ident.A``: fields read from a term."""

    term: Arg
    names: tuple[str, ...]


@dataclass(frozen=True)
class Cmd:
    """One command of a pipeline: a function and its arguments, or a single value."""

    args: tuple[Arg, ...]


@dataclass(frozen=True)
class Pipe:
    """``$a, $b := cmd | cmd``: commands, and the variables they declare (or assign)."""

    cmds: tuple[Cmd, ...]
    decl: tuple[str, ...] = ()
    assign: bool = False


Arg = Lit | Dot | Field | Var | Ident | Chain | Pipe


@dataclass(frozen=True)
class Text:
    text: str
    line: int


@dataclass(frozen=True)
class Comment:
    text: str
    line: int


@dataclass(frozen=True)
class Action:
    pipe: Pipe
    line: int


@dataclass(frozen=True)
class If:
    pipe: Pipe
    body: tuple[Node, ...]
    orelse: tuple[Node, ...]
    line: int


@dataclass(frozen=True)
class Range:
    pipe: Pipe
    body: tuple[Node, ...]
    orelse: tuple[Node, ...]
    line: int


@dataclass(frozen=True)
class With:
    pipe: Pipe
    body: tuple[Node, ...]
    orelse: tuple[Node, ...]
    line: int


@dataclass(frozen=True)
class Unsupported:
    """A construct with no translation (``define``, ``template``, ``block``, ``break``, ``continue``)."""

    word: str
    line: int


Node = Text | Comment | Action | If | Range | With | Unsupported
