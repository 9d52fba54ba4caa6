"""Templates: Jinja2 in its immutable sandbox, fed by a Snapshot, every output escaped for nginx.

Rendering is a pure function of (template, snapshot). Each data function records the dependency it
reads; a dependency the snapshot does not hold yet is recorded as missing and reads as empty, and the
caller must not apply such a render (it asks the watcher for the missing data and renders again).
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nodes
from jinja2.exceptions import SecurityError

from discovery.model import (
    CatalogQuery,
    Dependency,
    Instance,
    KeyQuery,
    ServiceQuery,
    ServiceSummary,
    Snapshot,
)
from plumbing.errors import TemplateError

from .escape import NGINX_NAME, NginxText
from .functions import DATA_FUNCTIONS, FILTERS, DataFunctions, make_env
from .sandbox import make_environment
from .template_errors import check_names, describe, error_line

__all__ = ["FUNCTIONS", "Rendered", "TemplateSet", "parse_service_spec"]

log = logging.getLogger(__name__)
MAX_OUTPUT = 64 * 1024 * 1024
FUNCTIONS = ("service", "services", "key", "upstream_name", "env", *DATA_FUNCTIONS)

# consul-template's form: [tag.]name[@dc][~near]; the name has no dots, so the tag is all before the last.
_SPEC = re.compile(
    r"\A(?:(?P<tag>[\w.\-]+)\.)?(?P<name>[\w\-/]+)(?:@(?P<dc>[\w.\-]+))?(?:~(?P<near>[\w.\-]+))?\Z"
)


@dataclass(frozen=True)
class Rendered:
    """The output of one template and what it read."""

    source: Path
    text: str
    dependencies: frozenset[Dependency]
    missing: frozenset[Dependency]
    warnings: tuple[str, ...] = ()


def parse_service_spec(spec: str) -> tuple[str, str | None, str | None, str | None]:
    """Split consul-template's ``"tag.name@dc~near"`` into (name, tag, dc, near)."""
    match = _SPEC.match(spec)
    if not match:
        raise ValueError(f"{spec!r} is not a service name (form: [tag.]name[@dc][~near])")
    return match["name"], match["tag"], match["dc"], match["near"]


_READER: contextvars.ContextVar[_Reader] = contextvars.ContextVar("reader")


def _unbound(name: str) -> Callable[..., Any]:
    """A global that calls the current render's reader, so imported macros can read data too."""

    def call(*args: Any, **kwargs: Any) -> Any:
        reader = _READER.get(None)
        if reader is None:
            raise SecurityError(f"{name}() can only be called while rendering")
        return getattr(reader, name)(*args, **kwargs)

    call.__name__ = name
    return call


class _Reader(DataFunctions):
    """The data functions of one render (ls, tree, node, ... in renderer/functions.py); records what they read."""

    def __init__(self, snapshot: Snapshot, allowed_env: Mapping[str, str] | None = None) -> None:
        self.snapshot = snapshot
        self.env = make_env(allowed_env or {})
        self.read: set[Dependency] = set()
        self.missing: set[Dependency] = set()
        self.warnings: list[str] = []
        self.upstreams: dict[str, str] = {}  # lower-cased upstream name -> the name as claimed

    def _get(self, dep: Dependency, empty: Any) -> Any:
        self.read.add(dep)
        if not self.snapshot.has(dep):
            self.missing.add(dep)
            return empty
        return self.snapshot.get(dep)

    def service(
        self,
        name: Any,
        tag: str | None = None,
        dc: str | None = None,
        passing: bool = True,
        near: str | None = None,
    ) -> list[dict[str, Any]]:
        """Instances of a service, sorted; only passing ones unless ``passing=False``."""
        base, spec_tag, spec_dc, spec_near = _service_name(name)
        query = ServiceQuery(base, dc or spec_dc or "", near or spec_near or "")
        instances: tuple[Instance, ...] = self._get(query, ())
        wanted_tag = tag or spec_tag
        return [
            _instance_view(i)
            for i in instances
            if (not wanted_tag or wanted_tag in i.tags) and (not passing or i.status == "passing")
        ]

    def services(self, tag: str | None = None, dc: str | None = None) -> list[dict[str, Any]]:
        """Every service (name, tags) sorted by name, optionally only those with a tag."""
        summaries: tuple[ServiceSummary, ...] = self._get(CatalogQuery(dc or ""), ())
        return [
            {"name": ConsulName(s.name), "tags": s.tags}
            for s in sorted(summaries)
            if not tag or tag in s.tags
        ]

    def key(self, path: str, default: Any = None) -> Any:
        """A Consul KV value as text, or ``default`` when the key does not exist."""
        value = self._get(KeyQuery(str(path).lstrip("/")), None)
        return default if value is None else value

    def upstream_name(self, name: Any) -> NginxText:
        """``name`` for an upstream block, or "" with a warning when nginx cannot use it or has it already."""
        text = str(name)
        if not NGINX_NAME.fullmatch(text):
            self.warnings.append(
                f"Skipped upstream {_shown(text)}: nginx takes only letters, digits, '_' and '-' in "
                "dot-separated parts (at most 1024 characters) in an upstream name."
            )
            return NginxText("")
        if text.lower() in self.upstreams:
            # nginx compares upstream names without case: a second one would make it refuse the file.
            first = self.upstreams[text.lower()]
            self.warnings.append(f"Skipped upstream {_shown(text)}: nginx already has it as {_shown(first)}.")
            return NginxText("")
        self.upstreams[text.lower()] = text
        return NginxText(text)


class ConsulName(str):
    """A service name exactly as Consul returned it: ``service()`` never reads it as "tag.name@dc"."""

    __slots__ = ()


def _service_name(name: Any) -> tuple[str, str | None, str | None, str | None]:
    """A name from Consul (``s``, ``s.name``, ``i.name``) as it is; other text in consul-template's form."""
    if isinstance(name, Mapping) and isinstance(name.get("name"), ConsulName):
        name = name["name"]
    if isinstance(name, ConsulName):
        return str(name), None, None, None
    try:
        return parse_service_spec(str(name))
    except ValueError as exc:
        raise TemplateError(f"service(): {exc}.") from None


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 120 else repr(text[:120]) + f"... ({len(text)} characters)"


def _instance_view(i: Instance) -> dict[str, Any]:
    return {
        "id": i.id,
        "name": ConsulName(i.name),
        "address": i.address,
        "port": i.port,
        "node": i.node,
        "node_address": i.node_address,
        "datacenter": i.datacenter,
        "tags": i.tags,
        "meta": i.meta_dict,
        "node_meta": dict(i.node_meta),
        "weight": i.weight,
        "status": i.status,
    }


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
        self._compiled: dict[Path, jinja2.Template] = {}
        self._warned: dict[Path, tuple[str, ...]] = {}

    def load(self) -> list[TemplateError]:
        """(Re)compile every source; return the errors (sources with errors keep their last good version)."""
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
        """Render one source against a snapshot."""
        template = self._compiled.get(source)
        if template is None:
            raise TemplateError(f"Template {source} has never compiled; nothing to render.")
        reader = _Reader(snapshot, self.allowed_env.get(source))
        token = _READER.set(reader)
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
            _READER.reset(token)
        if len(text) > MAX_OUTPUT:
            raise TemplateError(f"{source}: the output is larger than {MAX_OUTPUT // 2**20} MiB.")
        rendered = Rendered(
            source, text, frozenset(reader.read), frozenset(reader.missing), tuple(reader.warnings)
        )
        self._report(rendered)
        return rendered

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
