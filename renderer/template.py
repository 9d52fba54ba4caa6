"""Templates: Jinja2 in its immutable sandbox, fed by a Snapshot, every output escaped for nginx.

Rendering is a pure function of (template, snapshot). Each data function records the dependency it
reads; a dependency the snapshot does not hold yet is recorded as missing and reads as empty, and the
caller must not apply such a render (it asks the watcher for the missing data and renders again).

Because it is pure, a TemplateSet renders only what changed, and the text is the same as a full render:

* a template whose last render read only data that is the same in the new snapshot (same values, the
  same ones missing) is not rendered again: its last ``Rendered`` is returned;
* within a render, calls of the library's ``upstream`` macro equal to calls of the last render reuse
  their text (``block_cache``).

``load()`` (template edits, start-up) forgets both, and SIGHUP builds a new TemplateSet.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nodes
from jinja2.exceptions import SecurityError

from discovery.model import Dependency, Snapshot
from plumbing.errors import TemplateError

from .block_cache import Blocks
from .block_loop import make_upstream_blocks
from .functions import DATA_FUNCTIONS, FILTERS
from .reader import Reader, parse_service_spec
from .sandbox import make_environment
from .template_errors import check_names, describe, error_line

__all__ = ["FUNCTIONS", "Rendered", "TemplateSet", "parse_service_spec"]

log = logging.getLogger(__name__)
MAX_OUTPUT = 64 * 1024 * 1024
FUNCTIONS = ("service", "services", "key", "upstream_name", "env", *DATA_FUNCTIONS)


@dataclass(frozen=True)
class Rendered:
    """The output of one template and what it read."""

    source: Path
    text: str
    dependencies: frozenset[Dependency]
    missing: frozenset[Dependency]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Last:
    """A template's last render, with the compiled template and the snapshot it was made from."""

    template: jinja2.Template
    snapshot: Snapshot
    rendered: Rendered

    def holds(self, template: jinja2.Template, changed: frozenset[Dependency]) -> bool:
        """Whether rendering ``template`` now reads the same data: none of what it read ``changed``."""
        return template is self.template and changed.isdisjoint(self.rendered.dependencies)


def changed_between(old: Snapshot, new: Snapshot) -> frozenset[Dependency]:
    """Every dependency whose answer differs between two snapshots (or that only one of them holds)."""
    if old is new:
        return frozenset()
    known = new.changes_since(old)
    if known is not None:
        # The watcher's series says what changed; what changed and changed back is compared here.
        return frozenset(d for d in known if old.has(d) != new.has(d) or _answer(old, d) != _answer(new, d))
    changed: set[Dependency] = set()
    for before, now in (
        (old.services, new.services),
        (old.catalogs, new.catalogs),
        (old.keys, new.keys),
        (old.others, new.others),
    ):
        if before is now:
            continue
        # Both sorted by query, and unchanged answers keep their objects in the watcher's snapshots: a
        # walk side by side compares by identity first; a different set of queries falls back to dicts.
        if len(before) == len(now) and all(
            a[0] is b[0] or a[0] == b[0] for a, b in zip(before, now, strict=True)
        ):
            changed.update(
                a[0] for a, b in zip(before, now, strict=True) if a[1] is not b[1] and a[1] != b[1]
            )
        else:
            mine, theirs = dict(before), dict(now)
            changed.update(q for q in mine.keys() ^ theirs.keys())
            changed.update(
                q for q in mine.keys() & theirs.keys() if mine[q] is not theirs[q] and mine[q] != theirs[q]
            )
    return frozenset(changed)


def _answer(snapshot: Snapshot, dep: Dependency) -> object:
    return snapshot.get(dep) if snapshot.has(dep) else None


_READER: contextvars.ContextVar[Reader] = contextvars.ContextVar("reader")


def _unbound(name: str) -> Callable[..., Any]:
    """A global that calls the current render's reader, so imported macros can read data too."""

    def call(*args: Any, **kwargs: Any) -> Any:
        reader = _READER.get(None)
        if reader is None:
            raise SecurityError(f"{name}() can only be called while rendering")
        return getattr(reader, name)(*args, **kwargs)

    call.__name__ = name
    return call


class TemplateSet:
    """The compiled templates of a config; a broken edit keeps the last good compiled version."""

    def __init__(
        self,
        sources: Iterable[Path],
        env: Mapping[Path, Mapping[str, str]] | None = None,
        dynamic: bool = False,
    ) -> None:
        self.sources = tuple(sources)
        self.allowed_env = dict(env or {})  # per source: the variables its config lets env() read
        functions = {name: _unbound(name) for name in FUNCTIONS}
        self.env = make_environment(sorted({s.parent for s in self.sources}), functions)
        # [nginx] dynamic: the macro library's upstreams then carry the Lua balancer hook.
        self.env.globals["nginx_dynamic"] = dynamic
        self.env.filters.update(FILTERS)  # by_tag, parse_json, regex_match, ... (renderer/functions.py)
        self.blocks = Blocks(self.env, functools.partial(_READER.get, None))
        self.env.macro_hook = self.blocks.call
        self.env.globals["upstream_blocks"] = make_upstream_blocks(self.blocks)  # nginx.upstreams' loop
        self._compiled: dict[Path, jinja2.Template] = {}
        self._warned: dict[Path, tuple[str, ...]] = {}
        self._last: dict[Path, _Last] = {}
        self._diff: tuple[Snapshot, Snapshot, frozenset[Dependency]] = (Snapshot(), Snapshot(), frozenset())

    def load(self) -> list[TemplateError]:
        """(Re)compile every source; return the errors (sources with errors keep their last good version)."""
        # An edit may be in a file a template includes, which no compiled object shows: forget everything.
        self._last.clear()
        self.blocks.clear()
        errors = []
        for source in self.sources:
            try:
                self._compiled[source] = self.compile(source)
            except TemplateError as exc:
                errors.append(exc)
        return errors

    def compile(self, source: Path) -> jinja2.Template:
        """Parse one template and check that it calls only known functions."""
        try:
            text = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"Cannot read template {source}: {exc}.") from exc
        try:
            ast = self.env.parse(text, source.name, str(source))
            check_names(self.env, ast, source)
            # Compiled with the file's path so runtime errors can name the template line.
            code = self.env.compile(ast, source.name, str(source))
            return self.env.template_class.from_code(self.env, code, self.env.make_globals(None), None)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"{source}:{exc.lineno}: {(exc.message or 'syntax error').rstrip('.')}."
            ) from None

    def render(self, source: Path, snapshot: Snapshot) -> Rendered:
        """Render one source against a snapshot (its last render, when it read nothing that changed)."""
        template = self._compiled.get(source)
        if template is None:
            raise TemplateError(f"Template {source} has never compiled; nothing to render.")
        last = self._last.pop(source, None)
        if last is not None and last.holds(template, self._changed(last.snapshot, snapshot)):
            self._last[source] = last
            self._report(last.rendered)
            return last.rendered
        rendered = self._render(source, template, snapshot)
        self._last[source] = _Last(template, snapshot, rendered)
        self._report(rendered)
        return rendered

    def _changed(self, old: Snapshot, new: Snapshot) -> frozenset[Dependency]:
        # Every template of a round compares the same two snapshots: computed once.
        if self._diff[0] is not old or self._diff[1] is not new:
            self._diff = (old, new, changed_between(old, new))
        return self._diff[2]

    def _render(self, source: Path, template: jinja2.Template, snapshot: Snapshot) -> Rendered:
        blocks = self.blocks.for_source(source)
        reader = Reader(snapshot, self.allowed_env.get(source), blocks)
        token = _READER.set(reader)
        blocks.begin()
        try:
            text = template.render()
        except TemplateError as exc:
            raise TemplateError(f"{source}:{error_line(exc, source)}: {exc}") from None
        except RecursionError:
            raise TemplateError(f"{source}: the template recurses too deeply.") from None
        except (
            jinja2.TemplateError,
            ArithmeticError,
            TypeError,
            ValueError,
            LookupError,
            MemoryError,
        ) as exc:
            raise TemplateError(f"{source}:{error_line(exc, source)}: {describe(exc)}.") from None
        finally:
            blocks.end()
            _READER.reset(token)
        if len(text) > MAX_OUTPUT:
            raise TemplateError(f"{source}: the output is larger than {MAX_OUTPUT // 2**20} MiB.")
        return Rendered(
            source, text, frozenset(reader.read), frozenset(reader.missing), tuple(reader.warnings)
        )

    def _report(self, rendered: Rendered) -> None:
        """Log each warning of a complete render once: again only after a complete render without it."""
        if rendered.missing:
            return  # a render waiting for data is not applied; its warnings may not hold
        before = self._warned.get(rendered.source, ())
        for warning in rendered.warnings:
            if warning not in before:
                log.warning("%s: %s", rendered.source, warning)
        self._warned[rendered.source] = rendered.warnings

    def render_all(self, snapshot: Snapshot) -> tuple[list[Rendered], list[TemplateError]]:
        """Render every source; errors are returned, not raised, so one bad template spares the others."""
        done, errors = [], []
        for source in self.sources:
            try:
                done.append(self.render(source, snapshot))
            except TemplateError as exc:
                errors.append(exc)
        return done, errors
