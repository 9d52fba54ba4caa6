"""The Jinja2 environment templates run in: the immutable sandbox, with nginx escaping made structural.

What is written as it is, and why (every other ``{{ }}`` value becomes one escaped nginx token):

* text written in the template itself (Jinja never passes it through ``finalize``);
* ``NginxText``, which only our escaping makes: the ``nginx``, ``ident`` and ``hostport`` filters,
  ``upstream_name()``, and what a macro, a ``{% block %}`` (``self.x()``, ``super()``) or a recursive
  ``loop()`` returns. Their text is itself template text and ``{{ }}`` outputs, each already escaped;
  so is what ``upstream_blocks()`` joins (a macro's output per service, block_loop.py) and a block the
  macro hook hands back from the last render (the text that macro made from the same key, block_cache.py).

``markupsafe.Markup`` is *not* trusted: Jinja's HTML filters make it after HTML escaping, which leaves
``;``, ``{``, ``}`` and ``#`` alone. Autoescape is off, so ``join``, ``replace``, ``format`` and ``~``
give plain strings (one token each). Two constructs write a value without ``finalize`` and are closed:
a ``{% filter %}`` block is refused when the template is loaded, and ``{% call %}`` may only call a
macro. HTML-only filters are refused when the template is loaded, with the reason.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import jinja2.environment
import jinja2.nodes
import jinja2.runtime
import jinja2.sandbox
from jinja2.exceptions import SecurityError

from .escape import NGINX_NAME, NginxText, trusted_ident, trusted_token

__all__ = ["LIBRARY", "MAX_REPEAT", "REFUSED_FILTERS", "make_environment"]

LIBRARY = Path(__file__).parent / "templates"
MAX_REPEAT = 1024 * 1024
_HTML = "is HTML escaping, which leaves nginx's ; { } and # alone; every {{ }} is already escaped for nginx"
REFUSED_FILTERS: Mapping[str, str] = {
    "safe": "would write a value from Consul as it is, so it could add nginx directives",
    "e": _HTML,
    "escape": _HTML,
    "forceescape": _HTML,
    "urlize": "makes HTML links, which mean nothing in an nginx config",
    "xmlattr": "makes HTML attributes, which mean nothing in an nginx config",
    "striptags": "removes HTML tags and entities, which mean nothing in an nginx config",
}
_DICT_ATTRIBUTES = frozenset(dir(dict))  # what getattr finds on a plain dict (it has no instance ones)
_MISSING = object()
# Calling these runs template code whose output is template text and escaped {{ }} values only.
_TEXT_MAKERS = (jinja2.runtime.Macro, jinja2.runtime.BlockReference, jinja2.runtime.LoopContext)


class _Sandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """The immutable sandbox, with `*` and `**` bounded and the escaping rules of this module."""

    intercepted_binops = frozenset({"*", "**"})
    direct: frozenset[Callable[..., Any]] = frozenset()  # make_environment's functions
    # Called for every macro call with (macro, args, kwargs, run): may return a cached text instead of
    # run() (renderer/block_cache.py). Every security check here applies to its result the same way.
    macro_hook: (
        Callable[[jinja2.runtime.Macro, tuple[Any, ...], dict[str, Any], Callable[[], Any]], Any] | None
    ) = None

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int) and abs(right) > 64:
                raise SecurityError("exponent too large")
            return left**right
        if isinstance(left, (str, list, tuple)) and isinstance(right, int) and len(left) * right > MAX_REPEAT:
            raise SecurityError("repeated value too large")
        if isinstance(right, (str, list, tuple)) and isinstance(left, int) and len(right) * left > MAX_REPEAT:
            raise SecurityError("repeated value too large")
        return left * right

    def getattr(self, obj: Any, attribute: str) -> Any:
        # What Jinja's sandbox answers for the two lookups of a loop like `{% for s in services() %}
        # {{ nginx.upstream(s.name, ...) }}`, without its exception and checks: for a plain dict, a name
        # no dict has (its getattr would fail, then read the key); for an imported template, one of its
        # macros (no "_" name: every check of is_safe_attribute passes for a macro of a module).
        kind = type(obj)
        if kind is dict and attribute not in _DICT_ATTRIBUTES:
            value = obj.get(attribute, _MISSING)
            if value is not _MISSING:
                return value
        elif kind is jinja2.environment.TemplateModule and attribute[:1] != "_":
            value = obj.__dict__.get(attribute)
            if type(value) is jinja2.runtime.Macro:
                return value
        return super().getattr(obj, attribute)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # {% call X() %} writes what X returns without finalize: only a macro may stand there.
        if "caller" in kwargs and not isinstance(__obj, jinja2.runtime.Macro):
            raise SecurityError("a {% call %} block can only call a macro")
        if type(__obj) is types.FunctionType and __obj in __self.direct:
            # Our own data functions take no context and are safe to call: what Jinja's call would do
            # (drop the loop and block variables it passes along), without its per-call lookups.
            kwargs.pop("_loop_vars", None)
            kwargs.pop("_block_vars", None)
            return __obj(*args, **kwargs)
        if __self.macro_hook is not None and isinstance(__obj, jinja2.runtime.Macro):
            base = super().call
            value = __self.macro_hook(__obj, args, kwargs, lambda: base(__context, __obj, *args, **kwargs))
        else:
            value = super().call(__context, __obj, *args, **kwargs)
        if type(value) is not NginxText and isinstance(__obj, _TEXT_MAKERS) and isinstance(value, str):
            return NginxText(value)
        return value

    def _parse(self, source: str, name: str | None, filename: str | None) -> jinja2.nodes.Template:
        # Every template goes through here, also those reached by import, include and extends.
        ast = super()._parse(source, name, filename)
        for block in ast.find_all(jinja2.nodes.FilterBlock):
            raise jinja2.TemplateSyntaxError(
                "{% filter %} blocks are not allowed: a filter applied to rendered nginx text could undo "
                "its escaping; filter the values inside {{ }} instead",
                block.lineno,
                name,
                filename,
            )
        for flt in ast.find_all(jinja2.nodes.Filter):
            if flt.name in REFUSED_FILTERS:
                reason = REFUSED_FILTERS[flt.name]
                raise jinja2.TemplateSyntaxError(f"filter '{flt.name}' {reason}", flt.lineno, name, filename)
        return ast


def _finalize(value: Any) -> NginxText:
    """Every ``{{ }}`` value that is not ``NginxText`` becomes one escaped nginx token."""
    if isinstance(value, NginxText):
        return value
    if value is None:
        return NginxText("")
    return trusted_token(value)


def make_environment(search_path: Iterable[Path], functions: Mapping[str, Callable[..., Any]]) -> _Sandbox:
    """The sandboxed environment: templates from the given folders, then our macro library."""
    env = _Sandbox(
        loader=jinja2.FileSystemLoader([*map(str, search_path), str(LIBRARY)]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # no HTML escaping anywhere: nginx escaping is done by _finalize
        finalize=_finalize,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=True,
    )
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)  # not needed for configs; fewer objects to reach through
    for name in REFUSED_FILTERS:
        env.filters.pop(name, None)
    env.filters["nginx"] = trusted_token
    env.filters["ident"] = trusted_ident
    env.filters["hostport"] = _hostport
    env.filters["tojson"] = _tojson
    env.filters["by_tag"] = lambda items, tag: [i for i in items if tag in i["tags"]]
    env.filters["status"] = lambda items, *wanted: [i for i in items if i["status"] in wanted]
    env.tests["nginx_name"] = lambda value: isinstance(value, str) and NGINX_NAME.fullmatch(value) is not None
    env.globals.update(functions)
    env.direct = frozenset(f for f in functions.values() if type(f) is types.FunctionType)
    return env


def _hostport(instance: Any) -> NginxText:
    """``address:port`` with IPv6 addresses in brackets, as nginx's ``server`` wants it."""
    address, port = str(instance["address"]), int(instance["port"])
    host = f"[{address}]" if ":" in address else address
    return trusted_token(f"{host}:{port}")


def _tojson(value: Any, indent: int | None = None) -> str:
    """JSON text (sorted keys, no HTML escapes); a plain string, so it is output as one nginx token."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, indent=indent, default=str)
