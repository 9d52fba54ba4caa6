"""Go template pipelines -> Jinja2 expressions, with consul-template's functions and fields.

Every translated value carries a coarse type ("instances", "instance", "kv", "strmap", ...), so that
``.Address`` on a service instance becomes ``instance.address`` and ``range`` over ``byTag`` sorts keys
as Go does for maps.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from .gonodes import Arg, Chain, Cmd, Dot, Field, Ident, Lit, Pipe, Var
from .report import Unconvertible

__all__ = ["ELEMENT", "UNSUPPORTED", "Val", "Values", "literal"]


@dataclass(frozen=True)
class Val:
    """A Jinja expression and the kind of value it gives."""

    expr: str
    type: str = "any"


# What ranging over a value gives: (key type or None for lists, element type).
ELEMENT: dict[str, tuple[str | None, str]] = {
    "instances": (None, "instance"),
    "summaries": (None, "summary"),
    "kvlist": (None, "kv"),
    "nodes": (None, "node"),
    "nodeservices": (None, "nodeservice"),
    "strings": (None, "string"),
    "tagmap": ("string", "instances"),
    "strmap": ("string", "string"),
    "map": ("string", "any"),
}

FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "instance": {
        "Address": ("address", "string"), "Port": ("port", "int"), "ID": ("id", "string"),
        "Name": ("name", "string"), "Node": ("node", "string"), "NodeAddress": ("node_address", "string"),
        "NodeDatacenter": ("datacenter", "string"), "Tags": ("tags", "strings"),
        "ServiceMeta": ("meta", "strmap"), "NodeMeta": ("node_meta", "strmap"), "Status": ("status", "string"),
        "Weights": ("weight", "weights"),
    },
    "summary": {"Name": ("name", "string"), "Tags": ("tags", "strings")},
    "kv": {"Key": ("key", "string"), "Value": ("value", "string")},
    "node": {
        "Node": ("name", "string"), "Address": ("address", "string"), "ID": ("id", "string"),
        "Datacenter": ("datacenter", "string"), "Meta": ("meta", "strmap"),
    },
    "nodeinfo": {"Node": ("node", "node"), "Services": ("services", "nodeservices")},
    "nodeservice": {
        "ID": ("id", "string"), "Service": ("name", "string"), "Tags": ("tags", "strings"),
        "Meta": ("meta", "strmap"), "Port": ("port", "int"), "Address": ("address", "string"),
    },
}  # fmt: skip
_NAMED = {"instance": "a service instance", "summary": "a service", "kv": "a KV pair", "node": "a node"}
_SIMPLE = {"toLower": "lower", "toUpper": "upper", "toTitle": "title", "trimSpace": "trim"}
_COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_CONTAINS = {
    "containsAny": ("select", "> 0"), "containsAll": ("reject", "== 0"),
    "containsNone": ("select", "== 0"), "containsNotAll": ("reject", "> 0"),
}  # fmt: skip
UNSUPPORTED = {
    "secret": "reads Vault, which upstreams does not talk to",
    "secrets": "reads Vault, which upstreams does not talk to",
    "pkiCert": "reads Vault, which upstreams does not talk to",
    "plugin": "runs an external program while rendering, which the sandbox does not allow",
    "executeTemplate": "calls a named template; write a Jinja macro instead",
    "writeToFile": "writes files while rendering, which the sandbox does not allow",
    "file": "reads local files while rendering, which the sandbox does not allow",
    "timestamp": "depends on the clock, so equal data would not render equal bytes",
    "connect": "reads Connect data, which upstreams does not watch",
    "caRoots": "reads Connect CA data, which upstreams does not watch",
    "caLeaf": "reads Connect CA data, which upstreams does not watch",
}


def literal(value: str | int | float | bool | None) -> str:
    """A Go constant as a Jinja literal."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


class Values:
    """Translates pipelines in the scope given by ``dot`` and ``variable`` (set by the node translator)."""

    dot: Val | None
    variable: Callable[[str], Val]

    def pipe(self, pipe: Pipe) -> Val:
        value: Val | None = None
        for cmd in pipe.cmds:
            value = self.command(cmd, value)
        assert value is not None
        return value

    def command(self, cmd: Cmd, piped: Val | None) -> Val:
        head, rest = cmd.args[0], list(cmd.args[1:])
        if isinstance(head, Ident):
            args: list[Arg | Val] = [*rest, piped] if piped is not None else list(rest)
            return self.call(head.name, args)
        if isinstance(head, Chain) and isinstance(head.term, Ident) and head.term.name == "scratch":
            raise Unconvertible("scratch can only be used as a statement or with Get, Key and MapValues")
        if rest or piped is not None:
            raise Unconvertible("only a function can take arguments")
        return self.arg(head)

    def arg(self, arg: Arg | Val) -> Val:
        if isinstance(arg, Val):
            return arg
        if isinstance(arg, Lit):
            return Val(literal(arg.value), "string" if isinstance(arg.value, str) else "int")
        if isinstance(arg, Dot):
            return self.current()
        if isinstance(arg, Field):
            return self.fields(self.current(), arg.names)
        if isinstance(arg, Var):
            return self.fields(self.variable(arg.name), arg.names)
        if isinstance(arg, Ident):
            return self.call(arg.name, [])
        if isinstance(arg, Chain):
            return self.fields(self.arg(arg.term), arg.names)
        if arg.decl:
            raise Unconvertible("a variable declared inside parentheses has no equivalent")
        return self.pipe(arg)  # every compound expression is already in parentheses

    def current(self) -> Val:
        if self.dot is None:
            raise Unconvertible("'.' at the top of a consul-template template holds no data")
        return self.dot

    def fields(self, value: Val, names: tuple[str, ...]) -> Val:
        for name in names:
            table = FIELDS.get(value.type)
            if value.type == "weights":
                if name not in ("Passing", "Warning"):
                    raise Unconvertible(f"Weights has no field .{name}")
                value = Val(value.expr, "int")  # our weight is already the one for the instance's state
            elif table is not None:
                if name not in table:
                    what = _NAMED.get(value.type, value.type)
                    raise Unconvertible(f"field .{name} of {what} has no equivalent in upstreams")
                attr, kind = table[name]
                value = Val(f"{value.expr}.{attr}", kind)
            elif value.type == "strmap":
                value = Val(f"{value.expr}.get({json.dumps(name)}, '')", "string")
            else:
                value = Val(f"{value.expr}[{json.dumps(name)}]", "any")
        return value

    def call(self, name: str, args: list[Arg | Val]) -> Val:
        if name in UNSUPPORTED:
            raise Unconvertible(f"{name} {UNSUPPORTED[name]}")
        handler = getattr(self, f"fn_{name}", None)
        if handler is None:
            if name in _SIMPLE:
                return self.filter(_SIMPLE[name], args, 1, "string")
            if name in _COMPARE:
                return self.compare(name, args)
            if name in _CONTAINS:
                return self.contains(name, args)
            raise Unconvertible(f"the function {name} has no equivalent in upstreams")
        result: Val = handler(args)
        return result

    def values(self, name: str, args: list[Arg | Val], low: int, high: int | None = None) -> list[Val]:
        high = low if high is None else high
        if not low <= len(args) <= high:
            raise Unconvertible(f"{name} takes {low} argument(s) here, not {len(args)}")
        return [self.arg(a) for a in args]

    def filter(self, flt: str, args: list[Arg | Val], count: int, kind: str) -> Val:
        vals = self.values(flt, args, count)
        params = ", ".join(v.expr for v in vals[:-1])
        return Val(f"({vals[-1].expr} | {flt}{f'({params})' if params else ''})", kind)

    def compare(self, name: str, args: list[Arg | Val]) -> Val:
        if len(args) < 2 or (name != "eq" and len(args) != 2):
            raise Unconvertible(f"{name} takes two arguments here")
        first, *others = [self.arg(a) for a in args]
        op = _COMPARE[name]
        return Val("(" + " or ".join(f"{first.expr} {op} {o.expr}" for o in others) + ")", "bool")

    def contains(self, name: str, args: list[Arg | Val]) -> Val:
        needles, hay = self.values(name, args, 2)
        how, test = _CONTAINS[name]
        return Val(f"(({needles.expr}) | {how}('in', {hay.expr}) | list | length {test})", "bool")
