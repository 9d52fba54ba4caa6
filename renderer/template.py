"""Templates: Jinja2 in its immutable sandbox, fed by a Snapshot, every output escaped for nginx.

Rendering is a pure function of (template, snapshot). Each data function records the dependency it
reads; a dependency the snapshot does not hold yet is recorded as missing and reads as empty, and the
caller must not apply such a render (it asks the watcher for the missing data and renders again).
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes
import jinja2.sandbox
from jinja2.exceptions import SecurityError
from markupsafe import Markup

from discovery.errors import TemplateError
from discovery.model import (
    CatalogQuery,
    Dependency,
    Instance,
    KeyQuery,
    ServiceQuery,
    ServiceSummary,
    Snapshot,
)

from .escape import nginx_ident, nginx_token

__all__ = ["FUNCTIONS", "Rendered", "TemplateSet", "parse_service_spec"]

LIBRARY = Path(__file__).parent / "templates"
MAX_OUTPUT = 64 * 1024 * 1024
MAX_REPEAT = 1024 * 1024
FUNCTIONS = ("service", "services", "key")

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


def parse_service_spec(spec: str) -> tuple[str, str | None, str | None, str | None]:
    """Split consul-template's ``"tag.name@dc~near"`` into (name, tag, dc, near)."""
    match = _SPEC.match(spec)
    if not match:
        raise ValueError(f"{spec!r} is not a service name (form: [tag.]name[@dc][~near])")
    return match["name"], match["tag"], match["dc"], match["near"]


class _Sandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """The immutable sandbox, with `*` and `**` bounded so a template cannot exhaust memory."""

    intercepted_binops = frozenset({"*", "**"})

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


def _finalize(value: Any) -> Any:
    """Every ``{{ }}`` output that is not the output of a macro becomes one escaped nginx token."""
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("")
    return Markup(nginx_token(value))


def make_environment(search_path: Iterable[Path]) -> jinja2.Environment:
    """The sandboxed environment: templates from the given folders, then our macro library."""
    env = _Sandbox(
        loader=jinja2.FileSystemLoader([*map(str, search_path), str(LIBRARY)]),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        finalize=_finalize,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=True,
    )
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)  # not needed for configs; fewer objects to reach through
    env.filters.pop("safe", None)  # a template cannot switch escaping off for a value
    env.filters["nginx"] = lambda v: Markup(nginx_token(v))
    env.filters["ident"] = lambda v: Markup(nginx_ident(v))
    env.filters["hostport"] = _hostport
    env.filters["by_tag"] = lambda items, tag: [i for i in items if tag in i["tags"]]
    env.filters["status"] = lambda items, *wanted: [i for i in items if i["status"] in wanted]
    for name in FUNCTIONS:
        env.globals[name] = _unbound(name)
    return env


def _hostport(instance: Any) -> Markup:
    """``address:port`` with IPv6 addresses in brackets, as nginx's ``server`` wants it."""
    address, port = str(instance["address"]), int(instance["port"])
    host = f"[{address}]" if ":" in address else address
    return Markup(nginx_token(f"{host}:{port}"))


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


class _Reader:
    """The data functions of one render; records what they read."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.read: set[Dependency] = set()
        self.missing: set[Dependency] = set()

    def _get(self, dep: Dependency, empty: Any) -> Any:
        self.read.add(dep)
        if not self.snapshot.has(dep):
            self.missing.add(dep)
            return empty
        return self.snapshot.get(dep)

    def service(
        self,
        name: str,
        tag: str | None = None,
        dc: str | None = None,
        passing: bool = True,
        near: str | None = None,
    ) -> list[dict[str, Any]]:
        """Instances of a service, sorted; only passing ones unless ``passing=False``."""
        try:
            base, spec_tag, spec_dc, spec_near = parse_service_spec(str(name))
        except ValueError as exc:
            raise TemplateError(f"service(): {exc}.") from None
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
        return [{"name": s.name, "tags": s.tags} for s in sorted(summaries) if not tag or tag in s.tags]

    def key(self, path: str, default: Any = None) -> Any:
        """A Consul KV value as text, or ``default`` when the key does not exist."""
        value = self._get(KeyQuery(str(path).lstrip("/")), None)
        return default if value is None else value


def _instance_view(i: Instance) -> dict[str, Any]:
    return {
        "id": i.id,
        "name": i.name,
        "address": i.address,
        "port": i.port,
        "node": i.node,
        "node_address": i.node_address,
        "datacenter": i.datacenter,
        "tags": i.tags,
        "meta": i.meta_dict,
        "weight": i.weight,
        "status": i.status,
    }


class TemplateSet:
    """The compiled templates of a config; a broken edit keeps the last good compiled version."""

    def __init__(self, sources: Iterable[Path]) -> None:
        self.sources = tuple(sources)
        self.env = make_environment(sorted({s.parent for s in self.sources}))
        self._compiled: dict[Path, jinja2.Template] = {}

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
            _check_names(self.env, ast, source)
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
        reader = _Reader(snapshot)
        token = _READER.set(reader)
        try:
            text = template.render()
        except TemplateError as exc:
            raise TemplateError(f"{source}:{_line(exc, source)}: {exc}") from None
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
            raise TemplateError(f"{source}:{_line(exc, source)}: {_describe(exc)}.") from None
        finally:
            _READER.reset(token)
        if len(text) > MAX_OUTPUT:
            raise TemplateError(f"{source}: the output is larger than {MAX_OUTPUT // 2**20} MiB.")
        return Rendered(source, text, frozenset(reader.read), frozenset(reader.missing))

    def render_all(self, snapshot: Snapshot) -> tuple[list[Rendered], list[TemplateError]]:
        """Render every source; errors are returned, not raised, so one bad template spares the others."""
        done, errors = [], []
        for source in self.sources:
            try:
                done.append(self.render(source, snapshot))
            except TemplateError as exc:
                errors.append(exc)
        return done, errors


def _check_names(env: jinja2.Environment, ast: jinja2.nodes.Template, source: Path) -> None:
    """Refuse names that are neither defined by the template nor one of our functions and filters."""
    known = set(env.globals)  # includes service(), services() and key()
    for name in sorted(jinja2.meta.find_undeclared_variables(ast) - known):
        node = next((n for n in ast.find_all(jinja2.nodes.Name) if n.name == name), None)
        line = node.lineno if node else 1
        raise TemplateError(f"{source}:{line}: unknown function or variable '{name}'.")
    for flt in ast.find_all(jinja2.nodes.Filter):
        if flt.name not in env.filters:
            raise TemplateError(f"{source}:{flt.lineno}: unknown filter '{flt.name}'.")


def _line(exc: BaseException, source: Path) -> int:
    """The template line an exception came from (Jinja rewrites tracebacks to point at templates)."""
    line = 0
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(source):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line or getattr(exc, "lineno", None) or 1


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SecurityError):
        return f"refused by the sandbox: {exc}"
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return text[:300]
