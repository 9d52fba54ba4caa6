"""Template errors as sentences naming the file and line: unknown names at load, failures while rendering."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import jinja2
import jinja2.meta
import jinja2.nodes
from jinja2.exceptions import SecurityError

from plumbing.errors import TemplateError

__all__ = ["check_names", "describe", "error_line"]


def check_names(env: jinja2.Environment, ast: jinja2.nodes.Template, source: Path) -> None:
    """Refuse names that are neither defined by the template nor one of our functions and filters."""
    known = set(env.globals)  # includes service(), services() and key()
    for name in sorted(jinja2.meta.find_undeclared_variables(ast) - known):
        node = next((n for n in ast.find_all(jinja2.nodes.Name) if n.name == name), None)
        line = node.lineno if node else 1
        raise TemplateError(f"{source}:{line}: unknown function or variable '{name}'.")
    for flt in ast.find_all(jinja2.nodes.Filter):
        if flt.name not in env.filters:
            raise TemplateError(f"{source}:{flt.lineno}: unknown filter '{flt.name}'.")


def error_line(exc: BaseException, source: Path) -> int:
    """The template line an exception came from (Jinja rewrites tracebacks to point at templates)."""
    line = 0
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(source):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line or getattr(exc, "lineno", None) or 1


def describe(exc: BaseException) -> str:
    """A render error as the end of a sentence (the sandbox's refusals say so)."""
    if isinstance(exc, SecurityError):
        return f"refused by the sandbox: {exc}"
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return text[:300]
