"""Go template pipelines -> Jinja2 expressions, with consul-template's functions and fields.

Every translated value carries a coarse type ("instances", "instance", "kv", "strmap", ...), so that
``.Address`` on a service instance becomes ``instance.address`` and ``range`` over ``byTag`` sorts keys
as Go does for maps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..template import parse_service_spec
from .goparse import Arg, Chain, Cmd, Dot, Field, Ident, Lit, Pipe, Var
from .report import Unconvertible

__all__ = ["ELEMENT", "Val", "Values", "literal"]


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
_FILTERS = {"any", "passing", "warning", "critical", "maintenance"}
_SIMPLE = {"toLower": "lower", "toUpper": "upper", "toTitle": "title", "trimSpace": "trim"}
_COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_CONTAINS = {
    "containsAny": ("select", "> 0"), "containsAll": ("reject", "== 0"),
    "containsNone": ("select", "== 0"), "containsNotAll": ("reject", "> 0"),
}  # fmt: skip
_VERB = re.compile(r"%([-+# 0]*\d*(?:\.\d+)?)([a-zA-Z%])")
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

    # consul-template's data functions ------------------------------------------------------------

    def fn_service(self, args: list[Arg | Val]) -> Val:
        if not 1 <= len(args) <= 2:
            raise Unconvertible("service takes a name and at most one filter")
        spec = args[0]
        if not (isinstance(spec, Lit) and isinstance(spec.value, str)):
            return Val(f"service({self.arg(spec).expr})", "instances")
        text, _, filters = spec.value.partition("|")
        if len(args) == 2:
            extra = args[1]
            if not (isinstance(extra, Lit) and isinstance(extra.value, str)):
                raise Unconvertible('service\'s filter must be a constant such as "any"')
            filters = ",".join(f for f in (filters, extra.value) if f)
        try:
            parse_service_spec(text)
        except ValueError as exc:
            raise Unconvertible(str(exc)) from None
        return service_query(text, filters)

    def fn_services(self, args: list[Arg | Val]) -> Val:
        (spec,) = [a for a in args] or [Lit("")]
        if not (isinstance(spec, Lit) and isinstance(spec.value, str)) or not re.fullmatch(
            r"(?:@[\w.\-]+)?", spec.value
        ):
            raise Unconvertible("services takes only a constant '@datacenter'")
        dc = spec.value[1:]
        return Val(f"services(dc={json.dumps(dc)})" if dc else "services()", "summaries")

    def fn_key(self, args: list[Arg | Val]) -> Val:
        (path,) = self.values("key", args, 1)
        return Val(f"key({_no_dc(path)})", "string")

    def fn_keyOrDefault(self, args: list[Arg | Val]) -> Val:
        path, default = self.values("keyOrDefault", args, 2)
        return Val(f"key({_no_dc(path)}, {default.expr})", "string")

    def fn_keyExists(self, args: list[Arg | Val]) -> Val:
        (path,) = self.values("keyExists", args, 1)
        return Val(f"(key({_no_dc(path)}) is not none)", "bool")

    def fn_ls(self, args: list[Arg | Val]) -> Val:
        (prefix,) = self.values("ls", args, 1)
        return Val(f"ls({_no_dc(prefix)})", "kvlist")

    def fn_tree(self, args: list[Arg | Val]) -> Val:
        (prefix,) = self.values("tree", args, 1)
        return Val(f"tree({_no_dc(prefix)})", "kvlist")

    fn_safeLs, fn_safeTree = fn_ls, fn_tree

    def fn_node(self, args: list[Arg | Val]) -> Val:
        if not args:
            raise Unconvertible('node without a name means the agent\'s own node; give node "NAME"')
        (name,) = self.values("node", args, 1)
        return Val(f"node({name.expr})", "nodeinfo")

    def fn_nodes(self, args: list[Arg | Val]) -> Val:
        if args:
            raise Unconvertible("nodes takes no datacenter in upstreams")
        return Val("nodes()", "nodes")

    def fn_datacenters(self, args: list[Arg | Val]) -> Val:
        self.values("datacenters", args, 0)
        return Val("datacenters()", "strings")

    def fn_env(self, args: list[Arg | Val]) -> Val:
        (name,) = self.values("env", args, 1)
        return Val(f"env({name.expr})", "string")

    def fn_byTag(self, args: list[Arg | Val]) -> Val:
        (items,) = self.values("byTag", args, 1)
        return Val(f"({items.expr} | by_tag)", "tagmap")

    # consul-template's helpers -------------------------------------------------------------------

    def fn_in(self, args: list[Arg | Val]) -> Val:
        hay, needle = self.values("in", args, 2)
        return Val(f"({needle.expr} in {hay.expr})", "bool")

    def fn_contains(self, args: list[Arg | Val]) -> Val:
        needle, hay = self.values("contains", args, 2)
        return Val(f"({needle.expr} in {hay.expr})", "bool")

    def fn_join(self, args: list[Arg | Val]) -> Val:
        return self.filter("join", args, 2, "string")

    def fn_split(self, args: list[Arg | Val]) -> Val:
        sep, text = self.values("split", args, 2)
        return Val(f"({text.expr} | split_text({sep.expr}))", "strings")

    def fn_replaceAll(self, args: list[Arg | Val]) -> Val:
        return self.filter("replace", args, 3, "string")

    def fn_parseJSON(self, args: list[Arg | Val]) -> Val:
        return self.filter("parse_json", args, 1, "map")

    def fn_toJSON(self, args: list[Arg | Val]) -> Val:
        return self.filter("to_json", args, 1, "string")

    def fn_regexMatch(self, args: list[Arg | Val]) -> Val:
        return self.filter("regex_match", args, 2, "bool")

    def fn_regexReplaceAll(self, args: list[Arg | Val]) -> Val:
        return self.filter("regex_replace", args, 3, "string")

    def fn_parseInt(self, args: list[Arg | Val]) -> Val:
        return self.filter("int", args, 1, "int")

    def fn_parseFloat(self, args: list[Arg | Val]) -> Val:
        return self.filter("float", args, 1, "int")

    def fn_len(self, args: list[Arg | Val]) -> Val:
        return self.filter("length", args, 1, "int")

    def fn_index(self, args: list[Arg | Val]) -> Val:
        if len(args) < 2:
            raise Unconvertible("index takes a collection and at least one key")
        value, *keys = [self.arg(a) for a in args]
        for k in keys:
            if value.type in ("strmap",):
                value = Val(f"{value.expr}.get({k.expr}, '')", "string")
            else:
                element = ELEMENT.get(value.type, (None, "any"))[1]
                value = Val(f"{value.expr}[{k.expr}]", element)
        return value

    def fn_not(self, args: list[Arg | Val]) -> Val:
        (value,) = self.values("not", args, 1)
        return Val(f"(not {value.expr})", "bool")

    def fn_and(self, args: list[Arg | Val]) -> Val:
        vals = self.values("and", args, 1, 99)
        return Val("(" + " and ".join(v.expr for v in vals) + ")", "bool")

    def fn_or(self, args: list[Arg | Val]) -> Val:
        vals = self.values("or", args, 1, 99)
        return Val("(" + " or ".join(v.expr for v in vals) + ")", "bool")

    def fn_printf(self, args: list[Arg | Val]) -> Val:
        if not args or not (isinstance(args[0], Lit) and isinstance(args[0].value, str)):
            raise Unconvertible("printf's format must be a constant string")
        fmt = python_format(args[0].value)
        vals = [self.arg(a) for a in args[1:]]
        if not vals:
            return Val(json.dumps(args[0].value.replace("%%", "%")), "string")
        return Val(f"({json.dumps(fmt)} | format({', '.join(v.expr for v in vals)}))", "string")

    def fn_print(self, args: list[Arg | Val]) -> Val:
        vals = self.values("print", args, 1, 99)
        return Val("(" + " ~ ".join(v.expr for v in vals) + ")", "string")

    def fn_add(self, args: list[Arg | Val]) -> Val:
        b, a = self.values("add", args, 2)
        return Val(f"({a.expr} + {b.expr})", "int")

    def fn_subtract(self, args: list[Arg | Val]) -> Val:
        b, a = self.values("subtract", args, 2)
        return Val(f"({a.expr} - {b.expr})", "int")

    def fn_multiply(self, args: list[Arg | Val]) -> Val:
        b, a = self.values("multiply", args, 2)
        return Val(f"({a.expr} * {b.expr})", "int")


def service_query(spec: str, filters: str) -> Val:
    """``service "spec|filters"`` as a call to our ``service()``, health filters included."""
    wanted = [f.strip() for f in filters.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in _FILTERS]
    if unknown:
        raise Unconvertible(f"service filter {unknown[0]!r} is not one of {', '.join(sorted(_FILTERS))}")
    call = f"service({json.dumps(spec)}"
    if not wanted or wanted == ["passing"]:
        return Val(call + ")", "instances")
    if "any" in wanted:
        return Val(call + ", passing=False)", "instances")
    # Maintenance counts as critical in upstreams (a node or service in maintenance is not routable).
    states = sorted({"critical" if f == "maintenance" else f for f in wanted})
    quoted = ", ".join(json.dumps(s) for s in states)
    return Val(f"(service({json.dumps(spec)}, passing=False) | status({quoted}))", "instances")


def python_format(fmt: str) -> str:
    """A Go printf format as Python's %-format (``%v`` and ``%s`` print a value, ``%d`` a number)."""

    def verb(m: re.Match[str]) -> str:
        flags, letter = m.group(1), m.group(2)
        if letter == "%":
            return "%%"
        if letter == "v":
            return f"%{flags}s"
        if letter in "sdfxXoegE":
            return f"%{flags}{letter}"
        raise Unconvertible(f"printf verb %{letter} has no equivalent")

    return _VERB.sub(verb, fmt)


def _no_dc(path: Val) -> str:
    if path.expr.startswith('"') and "@" in path.expr:
        raise Unconvertible("a key in another datacenter ('@dc') is not supported by upstreams")
    return path.expr
