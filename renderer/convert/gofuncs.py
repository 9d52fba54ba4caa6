"""consul-template's functions, one handler each: ``fn_NAME(args) -> Val`` (arguments as Go passes
them, the piped value last)."""

from __future__ import annotations

import json
import re

from ..template import parse_service_spec
from .expr import ELEMENT, Val, Values, literal
from .gonodes import Arg, Lit
from .report import Unconvertible

__all__ = ["GoFunctions", "python_format", "service_query"]

_FILTERS = {"any", "passing", "warning", "critical", "maintenance"}
_VERB = re.compile(r"%([-+# 0]*\d*(?:\.\d+)?)([a-zA-Z%])")


class GoFunctions(Values):
    """The translator's expressions with consul-template's functions."""

    env_names: set[str]  # the variables env() reads: the config must allow them

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
        if len(args) > 1:
            raise Unconvertible("services takes at most a constant '@datacenter'")
        spec = args[0] if args else Lit("")
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
        return Val(f"node({_no_dc(name, 'a node')})", "nodeinfo")

    def fn_nodes(self, args: list[Arg | Val]) -> Val:
        if args:
            raise Unconvertible("nodes takes no datacenter in upstreams")
        return Val("nodes()", "nodes")

    def fn_datacenters(self, args: list[Arg | Val]) -> Val:
        self.values("datacenters", args, 0)
        return Val("datacenters()", "strings")

    def fn_env(self, args: list[Arg | Val]) -> Val:
        if len(args) != 1 or not (isinstance(args[0], Lit) and isinstance(args[0].value, str)):
            # The config lists the variables a template may read: the name must be known now.
            raise Unconvertible('env takes one constant variable name, e.g. env "HOSTNAME"')
        self.env_names.add(args[0].value)
        return Val(f"env({literal(args[0].value)})", "string")

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
        return Val("(" + " and ".join(v.expr for v in vals) + ")", _common(vals))

    def fn_or(self, args: list[Arg | Val]) -> Val:
        vals = self.values("or", args, 1, 99)
        return Val("(" + " or ".join(v.expr for v in vals) + ")", _common(vals))

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


def _no_dc(path: Val, what: str = "a key") -> str:
    if path.expr.startswith('"') and "@" in path.expr:
        raise Unconvertible(f"{what} in another datacenter ('@dc') is not supported by upstreams")
    return path.expr


def _common(vals: list[Val]) -> str:
    """Go's and/or give one of their arguments, not a boolean: the arguments' type when they share one."""
    kinds = {v.type for v in vals}
    return kinds.pop() if len(kinds) == 1 else "any"
