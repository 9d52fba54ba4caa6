"""A lexer for Go's text/template, as consul-template uses it: text, actions, comments, trim markers.

Trimming (``{{-`` and ``-}}``) is applied here, as Go's own lexer does: the text next to a trim marker
loses its spaces, tabs and newlines, so later stages see exactly the text Go would write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from plumbing.errors import TemplateError

__all__ = ["Token", "lex"]

Kind = Literal[
    "text", "comment", "open", "close", "ident", "keyword", "field", "variable", "dot", "string",
    "number", "bool", "nil", "pipe", "lparen", "rparen", "declare", "assign", "comma",
]  # fmt: skip

KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
)
_SPACE = " \t\r\n"
_TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\\n]|\\.)*")
      |(?P<raw>`[^`]*`)
      |(?P<char>'(?:[^'\\\n]|\\.)+')
      |(?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))
      |(?P<declare>:=)|(?P<assign>=)|(?P<pipe>\|)|(?P<lparen>\()|(?P<rparen>\))|(?P<comma>,)
      |(?P<variable>\$\w*)
      |(?P<field>(?:\.\w+)+)
      |(?P<dot>\.)
      |(?P<ident>[A-Za-z_]\w*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    """One lexical item and the line it starts on."""

    kind: Kind
    value: str
    line: int
    glued: bool = False  # follows the previous token with no space between (``x.Field``, ``(p).Field``)


def lex(text: str, name: str, left: str = "{{", right: str = "}}") -> list[Token]:
    """Split a template into tokens; raise TemplateError naming ``name:line`` on bad syntax."""
    tokens: list[Token] = []
    pos, line = 0, 1
    while pos < len(text):
        start = text.find(left, pos)
        if start < 0:
            tokens.append(Token("text", text[pos:], line))
            break
        inner = start + len(left)
        trim_left = text.startswith("-", inner) and inner + 1 < len(text) and text[inner + 1] in _SPACE
        chunk = text[pos:start]
        if trim_left:
            chunk = chunk.rstrip(_SPACE)
            inner += 2
        if chunk:
            tokens.append(Token("text", chunk, line))
        line += text.count("\n", pos, inner)
        end, trim_right = _action(text, inner, line, name, right, tokens)
        line += text.count("\n", inner, end)
        pos = end
        if trim_right:
            stripped = len(text) - len(text[pos:].lstrip(_SPACE))
            line += text.count("\n", pos, stripped)
            pos = stripped
    return tokens


def _action(text: str, pos: int, line: int, name: str, right: str, out: list[Token]) -> tuple[int, bool]:
    """Lex one action from ``pos`` (after the delimiter); return where it ends and whether it trims."""
    rest = text[pos:].lstrip(_SPACE)
    if rest.startswith("/*"):
        begin = len(text) - len(rest)
        close = text.find("*/", begin)
        if close < 0:
            raise TemplateError(f"{name}:{line}: unclosed comment.")
        out.append(Token("comment", text[begin + 2 : close], line))
        after = close + 2
        if text.startswith(right, after):
            return after + len(right), False
        trimmed = re.match(r"[ \t\r\n]-" + re.escape(right), text[after:])
        if trimmed:
            return after + trimmed.end(), True
        raise TemplateError(f"{name}:{line}: a comment must end right before the closing delimiter.")
    out.append(Token("open", "", line))
    glued = False
    while True:
        if pos >= len(text):
            raise TemplateError(f"{name}:{line}: unclosed action.")
        ch = text[pos]
        if ch in _SPACE:
            if text.startswith("-" + right, pos + 1):
                out.append(Token("close", "", line))
                return pos + 1 + 1 + len(right), True
            line += ch == "\n"
            pos += 1
            glued = False
            continue
        if text.startswith(right, pos):
            out.append(Token("close", "", line))
            return pos + len(right), False
        match = _TOKEN.match(text, pos)
        if not match or match.lastgroup is None:
            raise TemplateError(f"{name}:{line}: unexpected {text[pos]!r} in an action.")
        out.append(_token(match.lastgroup, match.group(), line, glued))
        line += match.group().count("\n")
        pos, glued = match.end(), True


def _token(group: str, value: str, line: int, glued: bool) -> Token:
    kind = group
    if group in ("raw", "char"):
        kind = "string"
    elif group == "ident" and value in KEYWORDS:
        kind = "keyword"
    elif group == "ident" and value in ("true", "false"):
        kind = "bool"
    elif group == "ident" and value == "nil":
        kind = "nil"
    return Token(kind, value, line, glued)  # type: ignore[arg-type]
