"""consul-template's ``scratch`` as a Jinja namespace: ``Set``/``SetX``/``MapSet``/``MapSetX`` become
``set`` statements, ``Get``/``Key``/``MapValues`` expressions; keys must be constants."""

from __future__ import annotations

import re

from .expr import Val
from .gofuncs import GoFunctions
from .gonodes import Arg, Chain, Cmd, Ident, Lit
from .report import Unconvertible

__all__ = ["Scratch", "is_scratch"]


class Scratch(GoFunctions):
    """The scratch statements and reads of the translator."""

    pieces: list[tuple[str, str]]
    scratch: dict[str, bool]  # key -> used as a map

    def scratch_statement(self, names: tuple[str, ...], args: tuple[Arg, ...]) -> None:
        if len(names) != 1 or not args or not isinstance(args[0], Lit) or not isinstance(args[0].value, str):
            raise Unconvertible('scratch needs a method and a constant key, e.g. scratch.Set "k" value')
        method, key = names[0], self.scratch_key(args[0].value, names[0].startswith("Map"))
        vals = [self.arg(a) for a in args[1:]]
        if method in ("Set", "SetX") and len(vals) == 1:
            assign = f"set scratch.{key} = {vals[0].expr}"
            if method == "SetX":
                self.pieces += [("tag", f"if scratch.{key} is none"), ("tag", assign), ("tag", "endif")]
            else:
                self.pieces.append(("tag", assign))
        elif method in ("MapSet", "MapSetX") and len(vals) == 2:
            k, v = vals
            item = f"set scratch.{key} = dict(scratch.{key}.items() | list + [({k.expr}, {v.expr})])"
            if method == "MapSetX":
                self.pieces += [("tag", f"if {k.expr} not in scratch.{key}"), ("tag", item), ("tag", "endif")]
            else:
                self.pieces.append(("tag", item))
        elif method in ("Get", "Key", "MapValues") and not vals:
            self.pieces.append(("out", self.scratch_read(method, key)))
        else:
            raise Unconvertible(f"scratch.{method} with {len(vals)} value(s) has no equivalent")

    def scratch_key(self, key: str, as_map: bool) -> str:
        name = re.sub(r"\W", "_", key) or "_"
        name = ("k_" + name) if name[0].isdigit() else name
        self.scratch[name] = self.scratch.get(name, False) or as_map
        return name

    def scratch_read(self, method: str, key: str) -> str:
        if method == "Key":
            return f"(scratch.{key} is not none)"
        if method == "MapValues":
            return f"(scratch.{key} | dictsort | map(attribute='1') | list)"
        return f"scratch.{key}"

    def command(self, cmd: Cmd, piped: Val | None) -> Val:
        head = cmd.args[0]
        if (
            isinstance(head, Chain)
            and is_scratch(head)
            and head.names[:1] in (("Get",), ("Key",), ("MapValues",))
        ):
            args = cmd.args[1:]
            if len(args) != 1 or not isinstance(args[0], Lit) or not isinstance(args[0].value, str) or piped:
                raise Unconvertible(f"scratch.{head.names[0]} needs one constant key")
            key = self.scratch_key(args[0].value, head.names[0] == "MapValues")
            kind = "strings" if head.names[0] == "MapValues" else "any"
            return Val(self.scratch_read(head.names[0], key), kind)
        return super().command(cmd, piped)


def is_scratch(chain: Chain) -> bool:
    return isinstance(chain.term, Ident) and chain.term.name == "scratch"
