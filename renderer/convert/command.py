"""``upstreams convert``: read consul-template's config or flags, write sidecar.toml and Jinja2 templates."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from plumbing.errors import ConfigError, TemplateError, UpstreamsError

from ..config import load_config
from ..template import TemplateSet
from .goparse import parse
from .hclconfig import Plan, TemplatePlan, plan_from_flags, plan_from_hcl
from .reload import NginxPlan, nginx_plan
from .report import EXIT_MANUAL, EXIT_OK, EXIT_UNREADABLE, Problem, exit_code
from .translate import translate

__all__ = ["convert", "run"]

_SUFFIXES = (".ctmpl", ".tmpl", ".tpl", ".template")
_ERROR_AT = re.compile(r"\A(?P<file>.*?):(?P<line>\d+): (?P<what>.*)\Z", re.S)


def convert(
    config: Path | None, flags: Sequence[str], output: Path, cwd: Path, env: Mapping[str, str]
) -> list[Problem]:
    """Convert and write everything that converts; return the problems (ConfigError when nothing can be read)."""
    plan = plan_from_hcl(config) if config is not None else Plan()
    templates = [*plan.templates, *plan_from_flags(list(flags), cwd)]
    if not templates:
        raise ConfigError(
            "Nothing to convert: give a consul-template config file or --template IN:OUT[:COMMAND]."
        )
    problems = list(plan.problems)
    nginx = _nginx(templates, problems)
    output.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, TemplatePlan]] = []
    for tmpl, name in zip(templates, _names(templates), strict=True):
        reads = _write_template(tmpl, output / name, problems)
        if reads is not None:
            written.append((name, replace(tmpl, env=reads)))
    if plan.token:
        token = output / "consul-token"
        token.write_text(plan.token + "\n")
        token.chmod(0o600)
    config_path = output / "sidecar.toml"
    config_path.write_text(sidecar_toml(replace(plan, nginx=nginx), written, config))
    problems += _check(config_path, env)
    return sorted(problems)


def _nginx(templates: list[TemplatePlan], problems: list[Problem]) -> NginxPlan:
    found: list[tuple[NginxPlan, TemplatePlan]] = []
    for tmpl in templates:
        if tmpl.command is None or tmpl.command == "" or tmpl.command == []:
            continue
        plan = nginx_plan(tmpl.command)
        shown = tmpl.command if isinstance(tmpl.command, str) else " ".join(tmpl.command)
        if plan is None:
            problems.append(Problem(tmpl.file, tmpl.line, f"the command {shown!r} does not just reload nginx, "
                                    "and the sidecar runs no other command after a render; run it another way."))  # fmt: skip
        else:
            found.append((plan, tmpl))
    distinct = {p for p, _ in found}
    if len(distinct) > 1:
        tmpl = found[1][1]
        problems.append(Problem(tmpl.file, tmpl.line, "templates reload nginx in different ways; the sidecar "
                                "reloads once for all changed files, so the first template's way is used."))  # fmt: skip
    if not found:
        # consul-template reloaded nothing; the sidecar always checks and reloads nginx after a change.
        return NginxPlan(pid_file="/run/nginx.pid")
    return found[0][0]


def _names(templates: list[TemplatePlan]) -> list[str]:
    names: list[str] = []
    for tmpl in templates:
        base = (tmpl.source or tmpl.destination).name
        stem = next((base[: -len(s)] for s in _SUFFIXES if base.endswith(s)), base)
        name, n = f"{stem}.j2", 1
        while name in names:
            n += 1
            name = f"{stem}-{n}.j2"
        names.append(name)
    return names


def _write_template(tmpl: TemplatePlan, target: Path, problems: list[Problem]) -> tuple[str, ...] | None:
    """Translate one template into ``target``; the variables it reads, or None (unreadable: a problem)."""
    where = str(tmpl.source) if tmpl.source else f"{tmpl.file}:{tmpl.line} (contents)"
    try:
        text = tmpl.contents if tmpl.source is None else tmpl.source.read_text(encoding="utf-8")
        if text is None:
            raise TemplateError(f"{tmpl.file}:{tmpl.line}: a template block has neither source nor contents.")
        result = translate(parse(text, where, tmpl.left, tmpl.right), where)
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(where, 1, f"cannot read the template: {exc}.", unreadable=True))
        return None
    except TemplateError as exc:
        found = _ERROR_AT.match(str(exc))
        file, line, what = (
            (found["file"], int(found["line"]), found["what"]) if found else (where, 1, str(exc))
        )
        problems.append(
            Problem(file, line, f"not a Go template consul-template can parse: {what}", unreadable=True)
        )
        return None
    target.write_text(result.text, encoding="utf-8")
    problems += result.problems
    return result.env


def _check(config: Path, env: Mapping[str, str]) -> list[Problem]:
    """What `upstreams check` would say about the written config (missing folders, ...)."""
    try:
        loaded = load_config(config, env)
        templates = TemplateSet((t.source for t in loaded.templates), loaded.template_env)
        errors = templates.load()
    except UpstreamsError as exc:
        return [Problem(str(config), 1, f"upstreams check: {str(exc).rstrip('.')}.")]
    return [Problem(str(config), 1, f"upstreams check: {str(e).rstrip('.')}.") for e in errors]


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))  # JSON's escapes are valid in TOML basic strings


def sidecar_toml(plan: Plan, templates: list[tuple[str, TemplatePlan]], origin: Path | None) -> str:
    """The sidecar's config file for a plan."""
    lines = [f"# Converted by `upstreams convert` from {origin or 'consul-template --template flags'}.", ""]
    consul = list(plan.consul) + ([("token_file", "consul-token")] if plan.token else [])
    if consul:
        lines += ["[consul]", *(f"{k} = {_toml(v)}" for k, v in consul), ""]
    if plan.wait:
        low, high = plan.wait
        lines += ["[wait]", f"min = {_toml(low)}", *([f"max = {_toml(high)}"] if high else []), ""]
    nginx = plan.nginx or NginxPlan(pid_file="/run/nginx.pid")
    lines += ["[nginx]", f"check_command = {_toml(nginx.check_command)}"]
    if nginx.reload_command:
        lines.append(f"reload_command = {_toml(nginx.reload_command)}")
    else:
        lines.append(f"pid_file = {_toml(nginx.pid_file or '/run/nginx.pid')}")
    for name, tmpl in templates:
        lines += [
            "",
            "[[template]]",
            f"source = {_toml(name)}",
            f"destination = {_toml(os.fspath(tmpl.destination))}",
        ]
        if tmpl.perms is not None:
            lines.append(f'perms = "{tmpl.perms:04o}"')
        if tmpl.backup:
            lines.append("backup = true")
        if tmpl.env:
            lines.append(f"env = {_toml(tmpl.env)}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, env: Mapping[str, str], cwd: Path) -> int:
    """Run ``upstreams convert``; print one line per problem; exit 0, 1 (needs a hand) or 2 (unreadable)."""
    try:
        problems = convert(args.config, args.template, args.output, cwd, env)
    except UpstreamsError as exc:
        print(f"upstreams: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    for problem in problems:
        print(f"upstreams convert: {problem}", file=sys.stderr)
    code = exit_code(problems)
    done = {EXIT_OK: "everything converted", EXIT_MANUAL: "some parts need a hand (listed above)"}
    print(
        f"{args.output / 'sidecar.toml'}: written; {done.get(code, 'some input could not be read (listed above)')}."
    )
    return code
