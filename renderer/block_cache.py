"""The per-upstream block cache: a call of the library's ``upstream`` macro equal to one of the last
render returns that call's text without running the macro body.

Why: a template writing 5,000 upstreams through ``nginx.upstreams`` runs the macro body 5,000 times for
every change, when one service changed. What makes a cached text equal to running the body again:

* The key holds every argument, each with its exact type (``1``, ``1.0`` and ``true`` are written
  differently). Instances from ``service()`` are keyed by the frozen Instances they were made from, by
  identity: the watcher keeps the objects of every service that did not change (and leaving out an
  instance elsewhere keeps them too), while a refetched service gets new ones and runs the body once.
  The entry holds those objects, so no other object can have their ``id()`` while it lives.
* The key holds the value of every name the macro body reads from outside its arguments (a global such
  as a mode flag), found in the macro's source. A body that reads a function other than
  ``upstream_name`` is never cached, nor a call with a value that cannot be frozen (``Unfrozen``).
* ``upstream_name()`` has a side effect: it claims the name for this render, so that a second upstream
  of the same name (nginx compares them without case) is refused with a warning. A hit claims again
  (so later duplicates are still refused and warnings repeat), and only when the claim gives what it
  gave when the text was made; otherwise the body runs.
* A body that read snapshot data (``service()``, ``key()``, ...) is not stored.

Bounded: each render keeps only the entries it used; a TemplateSet starts empty (SIGHUP) and forgets
every entry when its templates are loaded again (edits).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, cast

import jinja2
import jinja2.meta
import jinja2.nodes
import jinja2.runtime

from .escape import NginxText
from .reader import ConsulName, InstanceList, Reader, run_recorded
from .recent import Recent
from .sandbox import LIBRARY

__all__ = ["BlockCache", "Blocks", "Unfrozen", "freeze"]

LIBRARY_FILE = os.path.normpath(LIBRARY / "nginx.j2")
CACHED_MACRO = "upstream"
CLAIM = "upstream_name"  # the one function a cached body may call
_TAGGED = frozenset(
    {int, bool, ConsulName, NginxText}
)  # frozen as (type, value): 1 == True, "a" == NginxText("a")
_TRUE, _FALSE = (bool, True), (bool, False)
_ABSENT = object()  # a name the body reads that nothing defines (the body sets it before use)


class Unfrozen(Exception):
    """A value that cannot be part of a key: the call is not cached."""


def freeze(value: Any, keep: list[object]) -> Hashable:
    """``value`` as a hashable key with every type in it; snapshot parts by ``id()``, kept in ``keep``.

    A plain str or None stands for itself: nothing else freezes to one (every other form is a tuple).
    ``keep`` gets the snapshot's tuples the key names by ``id()``: the entry holds them, so no other
    object can have their ``id()`` while it lives (and they cost nothing: the snapshot holds them too).
    """
    kind = type(value)
    if kind is str or value is None:
        return cast(Hashable, value)
    if kind is InstanceList:
        tag, source = value._tag, value._source
        keep.append(source)
        return (
            "list",
            value._passing,
            tag if type(tag) is str else freeze(tag, keep),
            len(source),
            *map(id, source),
        )
    if kind is bool:
        return _TRUE if value else _FALSE  # no new object for the most common option values
    if kind in _TAGGED:
        return (kind, value)
    if value is _ABSENT:
        return ("absent",)
    if kind is float:
        return (float, repr(value))  # -0.0 == 0.0, but nginx would read what repr writes
    if kind is list or kind is tuple:
        return (kind, tuple([freeze(v, keep) for v in value]))
    if kind is dict:  # an instance taken out of a list (by a filter, say): by value, slower
        return (dict, tuple([(freeze(k, keep), freeze(v, keep)) for k, v in value.items()]))
    raise Unfrozen(kind.__name__)


class _Entry:
    """A block's text; ``used``: the render that last used it (a hit costs one dict lookup)."""

    __slots__ = ("claim", "keep", "text", "used")

    def __init__(self, text: str, claim: tuple[Any, str] | None, keep: tuple[object, ...], used: int) -> None:
        self.text = text
        self.claim = claim  # what the body passed to upstream_name, and what it got
        self.keep = keep  # what the key names by id()
        self.used = used


@dataclass(frozen=True)
class _Spec:
    """The cached macro as read from its source: the outside names its body reads (other than CLAIM)."""

    code: Any  # the compiled body's code object
    names: tuple[str, ...]


class BlockCache:
    """The blocks of one template that its last render used (and those this render used so far)."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, _Entry] = {}
        self._render = self._used = 0
        self.hits = self.misses = 0
        self.memo: Recent[tuple[Any, ...]] = Recent()  # the reader's memo for this template (reader.py)
        self.loops: Recent[Any] = Recent()  # nginx.upstreams' rows, by its arguments (block_loop.py)
        self.outside: dict[int, tuple[Hashable, ...]] = {}  # by id() of a _Spec: its names, frozen
        self.hot: tuple[Any, tuple[Hashable, ...]] = (None, ())  # this render's last macro and its head

    def __len__(self) -> int:
        return len(self._entries)

    def begin(self) -> None:
        """A render starts."""
        self._render += 1
        self._used = 0  # entries this render used so far
        self.memo.begin()
        self.loops.begin()
        self.hits = self.misses = 0
        self.outside = {}
        self.hot = (None, ())

    def end(self) -> None:
        """A render ended (well or not): keep only what it used."""
        self.memo.end()
        self.loops.end()
        render = self._render
        if self._used < len(self._entries):
            stale = [key for key, entry in self._entries.items() if entry.used != render]
            for key in stale:
                del self._entries[key]

    def call(
        self,
        reader: Reader,
        head: tuple[Any, ...],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        run: Callable[[], Any],
    ) -> Any:
        """The text of a call: cached, or made by ``run`` (and stored when it may be)."""
        keep: list[object] = []
        # One flat tuple: the macro and what it reads outside, the arguments, then name, value pairs.
        parts = [*head, len(args)]
        try:
            for a in args:
                parts.append(a if type(a) is str or a is None else freeze(a, keep))
            for name in sorted(kwargs) if kwargs else ():
                value = kwargs[name]
                parts.append(name)
                parts.append(value if type(value) is str or value is None else freeze(value, keep))
        except Unfrozen:
            return run()
        key = tuple(parts)
        entry = self._entries.get(key)
        render = self._render
        if entry is not None and (entry.claim is None or reader.try_claim(*entry.claim)):
            self.hits += 1
            if entry.used != render:
                entry.used = render
                self._used += 1
            return entry.text
        self.misses += 1
        text, claim, ok = run_recorded(reader, run)
        if ok:
            if entry is None or entry.used != render:
                self._used += 1
            # As the sandbox makes what a macro returns: a hit then needs no new object.
            self._entries[key] = _Entry(NginxText(text), claim, tuple(keep), render)
        return text


class Blocks:
    """The block caches of a TemplateSet, one per template, and the sandbox's hook into them."""

    def __init__(self, env: jinja2.Environment, current: Callable[[], Reader | None]) -> None:
        self.env = env
        self.current = current  # the reader of the render running now, if any
        self.caches: dict[Any, BlockCache] = {}
        self._specs: dict[int, _Spec | None] = {}  # by id() of the Macro's code object
        self._macros: dict[int, tuple[jinja2.runtime.Macro, _Spec | None]] = {}  # by id() of the Macro

    def for_source(self, source: Any) -> BlockCache:
        """The cache of one template."""
        return self.caches.setdefault(source, BlockCache())

    def clear(self) -> None:
        """Forget every block (templates were loaded again)."""
        self.caches.clear()

    def call(
        self,
        macro: jinja2.runtime.Macro,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        run: Callable[[], Any],
    ) -> Any:
        """The sandbox's hook for every macro call."""
        reader = self.current()
        cache: BlockCache | None = None if reader is None else reader.blocks
        if cache is None or "caller" in kwargs:
            return run()
        head: tuple[Hashable, ...] | None
        if macro is cache.hot[0]:
            head = cache.hot[1]  # the macro of the last call, most often: its head once per render
        else:
            head = self.head(macro, cache)
            if head is None:
                return run()
            cache.hot = (macro, head)
        if kwargs:
            # Jinja passes loop and block variables along and drops them before calling a macro: so do we.
            kwargs.pop("_loop_vars", None)
            kwargs.pop("_block_vars", None)
        return cache.call(reader, head, args, kwargs, run)  # type: ignore[arg-type]

    def head(self, macro: jinja2.runtime.Macro, cache: BlockCache) -> tuple[Hashable, ...] | None:
        """What a key of ``macro``'s calls starts with; None when its calls are not cached."""
        seen = self._macros.get(id(macro))
        spec = seen[1] if seen is not None and seen[0] is macro else self._spec(macro)
        if spec is None:
            return None
        head = cache.outside.get(id(spec))
        if head is None:
            # The macro, and what its body reads besides its arguments (absent ones as a marker), as
            # it reads them now: once per render. The spec holds the code object, so its id() holds.
            keep: list[object] = []
            try:
                values = tuple(freeze(self.env.globals.get(n, _ABSENT), keep) for n in spec.names)
            except Unfrozen:
                return None
            if keep:
                return None  # snapshot parts in a global: nothing would hold their id()
            head = cache.outside[id(spec)] = (id(spec.code), *values)
        return head

    def _spec(self, macro: jinja2.runtime.Macro) -> _Spec | None:
        if len(self._macros) >= 64:
            self._macros.clear()  # Jinja may make a module per render: hold on to a few macros only
        spec = self._spec_of(macro)
        self._macros[id(macro)] = (macro, spec)
        return spec

    def _spec_of(self, macro: jinja2.runtime.Macro) -> _Spec | None:
        code = getattr(getattr(macro, "_func", None), "__code__", None)
        if code is None or macro.name != CACHED_MACRO or os.path.normpath(code.co_filename) != LIBRARY_FILE:
            return None  # not the library's (a folder of the config may hold its own nginx.j2)
        if id(code) not in self._specs:
            # Never dropped: a spec holds its code object, so the id() in every key stays that code's.
            # One per compilation of the library, which only an edit of the installed file causes.
            self._specs[id(code)] = _read_spec(self.env, code)
        spec = self._specs[id(code)]
        return spec if spec is not None and spec.code is code else None


def _read_spec(env: jinja2.Environment, code: Any) -> _Spec | None:
    """Which outside names the library's macro reads; None when one of them makes it uncacheable."""
    with open(LIBRARY_FILE, encoding="utf-8") as f:
        ast = env.parse(f.read(), "nginx.j2", LIBRARY_FILE)
    macro = next(m for m in ast.body if isinstance(m, jinja2.nodes.Macro) and m.name == CACHED_MACRO)
    bare = jinja2.Environment()
    bare.filters.update(env.filters)
    bare.tests.update(env.tests)
    bare.globals.clear()  # so every outside name counts, functions included
    tree = jinja2.nodes.Template([macro])
    tree.set_environment(bare)
    names = jinja2.meta.find_undeclared_variables(tree) - {CLAIM}
    set_at_top = {
        n.name
        for node in ast.body
        if not isinstance(node, jinja2.nodes.Macro)
        for n in node.find_all(jinja2.nodes.Name)
        if n.ctx == "store"
    }
    if CLAIM in set_at_top or names & set_at_top:
        return None  # a module-level value: not worth following
    if any(callable(env.globals.get(n)) for n in names):
        return None  # a function could read data or have effects
    return _Spec(code, tuple(sorted(names)))
