"""A parsed Go template -> Jinja2 text for our sandbox, and the parts that could not be translated.

Go's scopes become Jinja names (``.`` inside ``range`` is the loop variable, ``$x`` a ``set``); whitespace
is kept exactly (jinjatext.py); Go's trim markers were already applied by the lexer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..template import FUNCTIONS
from .expr import ELEMENT, Val
from .gonodes import (
    Action,
    Arg,
    Chain,
    Comment,
    Ident,
    If,
    Lit,
    Node,
    Pipe,
    Range,
    Text,
    Unsupported,
    With,
)
from .jinjatext import jinja_text
from .report import Problem, Unconvertible
from .scratch import Scratch, is_scratch

__all__ = ["Translation", "translate"]

_AUTO = {"instance": "instance", "summary": "svc", "kv": "pair", "node": "n", "nodeservice": "ns"}
_RESERVED = {
    "and", "or", "not", "in", "is", "if", "else", "elif", "for", "true", "false", "none", "True", "False",
    "None", "loop", "self", "caller", "varargs", "kwargs", "namespace", "range", "dict", "scratch", "super",
    "with", "set", "block", "macro", "import", "from", "as", "recursive", "raw", "nginx", *FUNCTIONS,
}  # fmt: skip
_WORDS = {
    "define": "{{define}} names a template; write a Jinja macro instead",
    "template": "{{template}} calls a named template; use a Jinja macro or include instead",
    "block": "{{block}} defines and calls a named template; use a Jinja macro instead",
    "break": "{{break}} has no equivalent in our Jinja environment; filter the loop instead",
    "continue": "{{continue}} has no equivalent in our Jinja environment; filter the loop instead",
}


@dataclass(frozen=True)
class Translation:
    """The Jinja text of one template and what could not be translated."""

    text: str
    problems: tuple[Problem, ...]
    env: tuple[str, ...] = ()  # the environment variables the template reads, for its config


@dataclass
class _Scope:
    dot: Val | None
    names: dict[str, Val] = field(default_factory=dict)
    loop: int = 0  # loop depth: Jinja's ``set`` inside a for loop does not reach outside it
    owned: list[str] = field(default_factory=list)  # Jinja names to free when the Go scope ends


def translate(nodes: tuple[Node, ...], file: str) -> Translation:
    """Translate a parsed template; ``file`` names it in problems."""
    t = _Translator(file)
    t.block(nodes)
    body = jinja_text(t.pieces)
    if t.scratch:
        init = ", ".join(f"{k}={'{}' if m else 'none'}" for k, m in sorted(t.scratch.items()))
        # trim_blocks eats exactly the newline after this tag, so the body starts as Go's output does.
        body = "{% set scratch = namespace(" + init + ") %}\n" + body
    return Translation(body, tuple(t.problems), tuple(sorted(t.env_names)))


class _Translator(Scratch):
    def __init__(self, file: str) -> None:
        self.file = file
        self.pieces: list[tuple[str, str]] = []  # ("text" | "out" | "tag" | "comment", content)
        self.problems: list[Problem] = []
        self.scopes = [_Scope(None)]
        self.scratch: dict[str, bool] = {}  # key -> used as a map
        self.taken: set[str] = set()
        self.env_names: set[str] = set()
        self.line = 1

    # scope ---------------------------------------------------------------------------------------

    @property
    def dot(self) -> Val | None:  # type: ignore[override]
        return self.scopes[-1].dot

    def variable(self, name: str) -> Val:
        for scope in reversed(self.scopes):
            if name in scope.names:
                return scope.names[name]
        if name == "$":
            raise Unconvertible("'$' (the template's root value) holds no data in consul-template")
        raise Unconvertible(f"variable {name} is not defined here")

    def fresh(self, base: str) -> str:
        name, n = base, 1
        while name in self.taken or name in _RESERVED:
            n += 1
            name = f"{base}{n}"
        self.taken.add(name)
        self.scopes[-1].owned.append(name)
        return name

    def declare(self, go_name: str, value: Val) -> str:
        name = self.fresh(re.sub(r"\W", "_", go_name.lstrip("$")) or "value")
        self.scopes[-1].names[go_name] = Val(name, value.type)
        return name

    def push(self, dot: Val | None, loop: bool = False) -> None:
        self.scopes.append(_Scope(dot, {}, self.scopes[-1].loop + loop))

    def pop(self) -> None:
        self.taken -= set(self.scopes.pop().owned)

    # nodes ---------------------------------------------------------------------------------------

    def block(self, nodes: tuple[Node, ...]) -> None:
        for node in nodes:
            self.line = getattr(node, "line", self.line)
            try:
                self.node(node)
            except Unconvertible as exc:
                self.fail(node, str(exc))

    def fail(self, node: Node, sentence: str) -> None:
        line = getattr(node, "line", self.line)
        self.problems.append(Problem(self.file, line, sentence.rstrip(".") + "."))
        self.pieces.append(("comment", f" upstreams convert: line {line} not converted: {sentence} "))

    def node(self, node: Node) -> None:
        if isinstance(node, Text):
            self.pieces.append(("text", node.text))
        elif isinstance(node, Comment):
            self.pieces.append(("comment", node.text))
        elif isinstance(node, Action):
            self.action(node.pipe)
        elif isinstance(node, Unsupported):
            raise Unconvertible(_WORDS[node.word])
        elif isinstance(node, If):
            self.if_(node)
        elif isinstance(node, With):
            self.with_(node)
        else:
            self.range_(node)

    def action(self, pipe: Pipe) -> None:
        if pipe.decl:
            self.assignment(pipe)
            return
        head = pipe.cmds[0].args[0]
        if len(pipe.cmds) == 1 and isinstance(head, Chain) and is_scratch(head):
            self.scratch_statement(head.names, pipe.cmds[0].args[1:])
            return
        if len(pipe.cmds) == 1 and isinstance(head, Lit) and len(pipe.cmds[0].args) == 1:
            self.pieces.append(("text", "" if head.value is None else str(head.value)))
            return  # a constant is written as text, as Go does (not escaped as a value from Consul)
        printf = len(pipe.cmds) == 1 and isinstance(head, Ident) and head.name == "printf"
        if printf and self.printf_text(pipe.cmds[0].args[1:]):
            return
        self.output(self.pipe(pipe))

    def output(self, value: Val) -> None:
        """``{{ value }}`` printed as Go's fmt prints it: lists as ``[a b]``, booleans as ``true``/``false``."""
        if value.type == "strings":
            item = self.fresh("item")  # each element one escaped token, spaces between, as fmt does
            self.pieces += [("text", "["), ("tag", f"for {item} in {value.expr}"), ("out", item)]
            self.pieces += [("tag", "if not loop.last"), ("text", " "), ("tag", "endif"), ("tag", "endfor")]
            self.pieces.append(("text", "]"))
            self.taken.discard(item)
        elif value.type == "bool":
            self.pieces.append(("out", f"'true' if {value.expr} else 'false'"))
        else:
            self.pieces.append(("out", value.expr))

    def printf_text(self, args: tuple[Arg, ...]) -> bool:
        """``{{printf "%s:%d" .Address .Port}}`` as text and one output per verb (each escaped alone)."""
        if not args or not isinstance(args[0], Lit) or not isinstance(args[0].value, str):
            return False
        parts = re.split(r"(%[-+# 0]*\d*(?:\.\d+)?[a-zA-Z%])", args[0].value)
        verbs = [p for p in parts[1::2] if p != "%%"]
        if len(verbs) != len(args) - 1 or any(v[-1] not in "sdv" or len(v) > 2 for v in verbs):
            return False
        values = iter(args[1:])
        out: list[tuple[str, str]] = []  # built whole first: a failing argument must leave no half
        for i, part in enumerate(parts):
            if i % 2 == 0 or part == "%%":
                out.append(("text", part.replace("%%", "%") if i % 2 else part))
                continue
            value = next(values)
            if isinstance(value, Lit):
                out.append(("text", str(value.value)))  # a constant is text, as in Go
            else:
                out.append(("out", self.arg(value).expr))
        self.pieces += out
        return True

    def assignment(self, pipe: Pipe) -> None:
        if len(pipe.decl) != 1:
            raise Unconvertible("only range can declare two variables")
        value = self.pipe(Pipe(pipe.cmds))
        if pipe.assign:
            target = self.variable(pipe.decl[0])
            declared = next(s for s in reversed(self.scopes) if pipe.decl[0] in s.names)
            if declared.loop != self.scopes[-1].loop:
                raise Unconvertible(
                    f"assigning {pipe.decl[0]} inside a range does not reach outside it in Jinja; use scratch"
                )
            self.pieces.append(("tag", f"set {target.expr} = {value.expr}"))
            return
        name = self.declare(pipe.decl[0], value)
        self.pieces.append(("tag", f"set {name} = {value.expr}"))

    def if_(self, node: If, elif_: bool = False) -> None:
        self.pieces.append(("tag", f"{'elif' if elif_ else 'if'} {self.condition(node.pipe)}"))
        self.push(self.dot)
        self.block(node.body)
        self.pop()
        if len(node.orelse) == 1 and isinstance(node.orelse[0], If):
            self.if_(node.orelse[0], elif_=True)
            return
        if node.orelse:
            self.pieces.append(("tag", "else"))
            self.push(self.dot)
            self.block(node.orelse)
            self.pop()
        self.pieces.append(("tag", "endif"))

    def condition(self, pipe: Pipe) -> str:
        if pipe.decl:
            raise Unconvertible("a variable declared in an if condition has no equivalent; declare it before")
        return self.pipe(pipe).expr

    def with_(self, node: With) -> None:
        value = self.pipe(Pipe(node.pipe.cmds))
        if len(node.pipe.decl) > 1:
            raise Unconvertible("with can declare only one variable")
        name = self.fresh("value")
        self.pieces.append(("tag", f"set {name} = {value.expr}"))
        self.pieces.append(("tag", f"if {name}"))
        self.push(Val(name, value.type))
        if node.pipe.decl:
            self.scopes[-1].names[node.pipe.decl[0]] = Val(name, value.type)
        self.block(node.body)
        self.pop()
        if node.orelse:
            self.pieces.append(("tag", "else"))
            self.push(self.dot)
            self.block(node.orelse)
            self.pop()
        self.pieces.append(("tag", "endif"))

    def range_(self, node: Range) -> None:
        value = self.pipe(Pipe(node.pipe.cmds))
        key_type, elem_type = ELEMENT.get(value.type, (None, "any"))
        decl = node.pipe.decl
        self.push(None, loop=True)
        elem = (
            self.declare(decl[-1], Val("", elem_type)) if decl else self.fresh(_AUTO.get(elem_type, "item"))
        )
        self.scopes[-1].dot = Val(elem, elem_type)
        index = self.declare(decl[0], Val("", key_type or "int")) if len(decl) == 2 else None
        if key_type is not None:
            key = index or self.fresh("key")
            self.pieces.append(("tag", f"for {key}, {elem} in {value.expr} | dictsort"))
        else:
            self.pieces.append(("tag", f"for {elem} in {value.expr}"))
            if index:
                self.pieces.append(("tag", f"set {index} = loop.index0"))
        self.block(node.body)
        self.pop()
        if node.orelse:
            self.pieces.append(("tag", "else"))
            self.push(self.dot)
            self.block(node.orelse)
            self.pop()
        self.pieces.append(("tag", "endfor"))
