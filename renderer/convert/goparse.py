"""A parser for Go's text/template: tokens -> a tree of frozen nodes (the subset consul-template uses).

The node types live in ``gonodes`` and are re-exported here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from plumbing.errors import TemplateError

from .golex import Token, lex
from .gonodes import (
    Action,
    Arg,
    Chain,
    Cmd,
    Comment,
    Dot,
    Field,
    Ident,
    If,
    Lit,
    Node,
    Pipe,
    Range,
    Text,
    Unsupported,
    Var,
    With,
)

__all__ = [
    "Action", "Chain", "Cmd", "Comment", "Dot", "Field", "Ident", "If", "Lit", "Node", "Pipe", "Range",
    "Text", "Unsupported", "Var", "With", "parse",
]  # fmt: skip


def parse(text: str, name: str, left: str = "{{", right: str = "}}") -> tuple[Node, ...]:
    """Parse a whole template; raise TemplateError naming ``name:line`` on bad syntax."""
    parser = _Parser(lex(text, name, left, right), name)
    nodes, stop = parser.nodes()
    if stop is not None:
        raise parser.error(stop[1], f"unexpected {{{{{stop[0]}}}}}")
    return nodes


class _Parser:
    def __init__(self, tokens: list[Token], name: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.name = name

    def error(self, line: int, what: str) -> TemplateError:
        return TemplateError(f"{self.name}:{line}: {what}.")

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            last = self.tokens[-1].line if self.tokens else 1
            raise self.error(last, "unexpected end of template")
        self.pos += 1
        return token

    def nodes(self) -> tuple[tuple[Node, ...], tuple[str, int] | None]:
        """Nodes up to an ``end`` or ``else`` (returned as the stop word and its line) or the end."""
        out: list[Node] = []
        while (token := self.peek()) is not None:
            self.pos += 1
            if token.kind == "text":
                out.append(Text(token.value, token.line))
            elif token.kind == "comment":
                out.append(Comment(token.value, token.line))
            else:
                word = self.peek()
                if word is not None and word.kind == "keyword":
                    self.pos += 1
                    if word.value in ("end", "else"):
                        return tuple(out), (word.value, word.line)
                    out.append(self.block(word))
                else:
                    out.append(Action(self.pipe(token.line), token.line))
        return tuple(out), None

    def block(self, word: Token) -> Node:
        if word.value not in ("if", "range", "with"):
            self.skip_action()
            if word.value in ("define", "block"):
                self.body_until_end(word.line)  # parse and drop the body, so the rest still lines up
            return Unsupported(word.value, word.line)
        pipe = self.pipe(word.line)
        body, stop = self.nodes()
        orelse: tuple[Node, ...] = ()
        if stop is None:
            raise self.error(word.line, f"{{{{{word.value}}}}} has no {{{{end}}}}")
        if stop[0] == "else":
            orelse = self.else_branch(word.value, stop[1])
        else:
            self.expect("close", stop[1])
        if word.value == "if":
            return If(pipe, body, orelse, word.line)
        if word.value == "range":
            return Range(pipe, body, orelse, word.line)
        return With(pipe, body, orelse, word.line)

    def else_branch(self, word: str, line: int) -> tuple[Node, ...]:
        nxt = self.peek()
        if nxt is not None and nxt.kind == "keyword" and nxt.value in ("if", "with") and word == nxt.value:
            # {{else if ...}} / {{else with ...}}: an If/With nested in the else branch, sharing the {{end}}.
            self.pos += 1
            return (self.block(nxt),)
        self.expect("close", line)
        body, stop = self.nodes()
        if stop is None or stop[0] != "end":
            raise self.error(line, f"{{{{else}}}} of {{{{{word}}}}} has no {{{{end}}}}")
        self.expect("close", stop[1])
        return body

    def body_until_end(self, line: int) -> None:
        _, stop = self.nodes()
        while stop is not None and stop[0] == "else":
            self.skip_action()
            _, stop = self.nodes()
        if stop is None:
            raise self.error(line, "a block has no {{end}}")
        self.expect("close", stop[1])

    def skip_action(self) -> None:
        while self.take().kind != "close":
            pass

    def expect(self, kind: str, line: int) -> None:
        token = self.take()
        if token.kind != kind:
            raise self.error(token.line, f"expected the end of the action, not {token.value!r}")

    def pipe(self, line: int) -> Pipe:
        """A pipeline up to the closing delimiter (which is consumed)."""
        decl, assign = self.declarations()
        cmds = list(self.commands("close", line))
        if not cmds and not decl:
            raise self.error(line, "empty action")
        if decl and not cmds:
            raise self.error(line, "missing value for the variable")
        return Pipe(tuple(cmds), decl, assign)

    def declarations(self) -> tuple[tuple[str, ...], bool]:
        start = self.pos
        names: list[str] = []
        while (token := self.peek()) is not None and token.kind == "variable":
            self.pos += 1
            names.append(token.value)
            sep = self.peek()
            if sep is not None and sep.kind == "comma" and len(names) < 2:
                self.pos += 1
                continue
            if sep is not None and sep.kind in ("declare", "assign"):
                self.pos += 1
                return tuple(names), sep.kind == "assign"
            break
        self.pos = start  # not a declaration: the variable is a value
        return (), False

    def commands(self, end: str, line: int) -> Iterator[Cmd]:
        args: list[Arg] = []
        while True:
            token = self.take()
            if token.kind == end:
                if args:
                    yield Cmd(tuple(args))
                elif self.tokens[self.pos - 2].kind == "pipe":
                    raise self.error(token.line, "missing command after '|'")
                return
            if token.kind == "pipe":
                if not args:
                    raise self.error(token.line, "missing command before '|'")
                yield Cmd(tuple(args))
                args = []
                continue
            args.append(self.term(token))

    def term(self, token: Token) -> Arg:
        term = self.operand(token)
        nxt = self.peek()
        if nxt is not None and nxt.kind == "field" and nxt.glued:
            self.pos += 1
            return Chain(term, tuple(nxt.value.split(".")[1:]))
        return term

    def operand(self, token: Token) -> Arg:
        kind, value = token.kind, token.value
        if kind == "string":
            return Lit(_string(value, self, token.line))
        if kind == "number":
            return Lit(_number(value, self, token.line))
        if kind == "bool":
            return Lit(value == "true")
        if kind == "nil":
            return Lit(None)
        if kind == "dot":
            return Dot()
        if kind == "field":
            return Field(tuple(value.split(".")[1:]))
        if kind == "variable":
            nxt = self.peek()
            if nxt is not None and nxt.kind == "field" and nxt.glued:
                self.pos += 1
                return Var(value, tuple(nxt.value.split(".")[1:]))
            return Var(value)
        if kind == "ident":
            return Ident(value)
        if kind == "lparen":
            decl, assign = self.declarations()
            cmds = tuple(self.commands("rparen", token.line))
            if not cmds:
                raise self.error(token.line, "empty parentheses")
            return Pipe(cmds, decl, assign)
        raise self.error(token.line, f"unexpected {value or kind!r} in an action")


def _string(text: str, parser: _Parser, line: int) -> str | int:
    if text.startswith("`"):
        return text[1:-1]
    try:
        value = ast.literal_eval(text)  # Go's escapes are a subset of Python's for what templates use
    except (ValueError, SyntaxError):
        raise parser.error(line, f"bad string literal {text}") from None
    if text.startswith("'"):
        return ord(value) if isinstance(value, str) and len(value) == 1 else 0  # a Go rune is a number
    return str(value)


def _number(text: str, parser: _Parser, line: int) -> int | float:
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        pass
    try:
        return float(text.replace("_", ""))
    except ValueError:
        raise parser.error(line, f"bad number {text}") from None
