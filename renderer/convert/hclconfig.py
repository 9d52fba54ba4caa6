"""consul-template's configuration (HCL, or ``-template IN:OUT:CMD`` flags) -> a neutral conversion plan."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plumbing.errors import ConfigError

from .reload import NginxPlan
from .report import Problem

__all__ = ["Plan", "TemplatePlan", "plan_from_flags", "plan_from_hcl"]

_SSL = {"ca_cert": "ca_file", "ca_path": "ca_path", "cert": "cert_file", "key": "key_file",
        "server_name": "tls_server_name"}  # fmt: skip
_NOTES = {
    "log_level": "upstreams takes --log-level on its command line",
    "pid_file": "this is consul-template's own pid file; the sidecar needs none",
    "kill_signal": "the sidecar stops on SIGTERM or SIGINT",
    "reload_signal": "the sidecar re-reads its config on SIGHUP",
    "syslog": "the sidecar logs to stderr (journald under systemd)",
    "retry": "the sidecar retries Consul forever with backoff",
    "transport": "the sidecar manages its own connections ([consul] max_connections)",
    "template_error_fatal": "a template that fails keeps its last good file and the sidecar goes on",
    "err_on_failed_lookup": "a missing key reads as none; give key() a default",
    "dedup": "every sidecar watches Consul itself; there is no de-duplication mode",
    "once": "run `upstreams render` for a single render",
    "namespace": "Consul Enterprise namespaces are not supported",
    "command_timeout": "the reload command runs with the sidecar's own timeout",
    "create_dest_dirs": "the destination's folder must exist before the sidecar starts",
    "error_on_missing_key": "a missing key reads as none; give key() a default",
    "error_fatal": "a template that fails keeps its last good file and the sidecar goes on",
    "function_denylist": "the sandbox already offers only reading functions",
    "function_blacklist": "the sandbox already offers only reading functions",
    "sandbox_path": "templates cannot read files at all",
    "user": "the written file keeps the sidecar's user; set perms",
    "group": "the written file keeps the sidecar's group; set perms",
}
_MANUAL = {
    "vault": "Vault is not supported: secrets cannot be rendered by upstreams",
    "exec": "exec mode (supervising a child process) is not supported; run nginx under systemd",
    "auth": "HTTP basic auth to Consul is not supported; use an ACL token",
}


@dataclass(frozen=True)
class TemplatePlan:
    """One template to convert: where its Go text comes from and what the sidecar does with the output."""

    file: str  # the config file or "--template", for problems
    line: int
    destination: Path
    source: Path | None = None
    contents: str | None = None
    command: str | list[str] | None = None
    perms: int | None = None
    backup: bool = False
    left: str = "{{"
    right: str = "}}"
    env: tuple[str, ...] = ()  # the variables the translated template reads (``env = [...]``)


@dataclass(frozen=True)
class Plan:
    """Everything the converter writes: [consul], [wait], [nginx], templates, and the problems met."""

    consul: tuple[tuple[str, Any], ...] = ()
    token: str | None = field(default=None, repr=False)
    wait: tuple[str, str] | None = None
    nginx: NginxPlan | None = None
    templates: tuple[TemplatePlan, ...] = ()
    problems: tuple[Problem, ...] = ()


def plan_from_flags(flags: list[str], base: Path) -> list[TemplatePlan]:
    """``-template "IN:OUT[:COMMAND]"`` values (paths relative to ``base``, the working directory)."""
    out = []
    for flag in flags:
        parts = flag.split(":", 2)
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise ConfigError(f"--template {flag!r} must be IN:OUT or IN:OUT:COMMAND.")
        command = parts[2] if len(parts) == 3 and parts[2].strip() else None
        out.append(TemplatePlan("--template", 1, base / parts[1], source=base / parts[0], command=command))
    return out


def plan_from_hcl(path: Path) -> Plan:
    """Read a consul-template HCL file; raise ConfigError when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read {path}: {exc}.") from exc
    # Imported here: HCL's parser costs 55 ms to load, paid by every `upstreams watch` start otherwise.
    import hcl2
    import lark
    from hcl2.utils import SerializationOptions

    try:
        # Heredocs (`contents = <<EOF`) as plain strings, not with their markers.
        data = hcl2.loads(text, serialization_options=SerializationOptions(preserve_heredocs=False))
    except (lark.exceptions.LarkError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path} is not valid HCL: {first.rstrip('.')}.") from None
    return _Reader(path, text).plan(data)


def _value(raw: Any) -> Any:
    """python-hcl2 keeps string quotes; undo them (HCL string escapes are JSON's)."""
    if isinstance(raw, str) and len(raw) >= 2 and raw.startswith('"') and raw.endswith('"'):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw[1:-1]
    if isinstance(raw, list):
        return [_value(v) for v in raw]
    return raw


def _blocks(raw: Any) -> list[dict[str, Any]]:
    items = raw if isinstance(raw, list) else [raw]
    return [b for b in items if isinstance(b, dict)]


class _Reader:
    def __init__(self, path: Path, text: str) -> None:
        self.path, self.lines = path, text.splitlines()
        self.problems: list[Problem] = []

    def line(self, key: str, start: int = 1, nth: int = 0) -> int:
        pattern = re.compile(rf"^\s*{re.escape(key)}\b")
        hits = [i + 1 for i, text in enumerate(self.lines) if i + 1 >= start and pattern.match(text)]
        return hits[nth] if nth < len(hits) else start

    def note(self, line: int, sentence: str, manual: bool = False) -> None:
        self.problems.append(Problem(str(self.path), line, sentence, manual=manual))

    def plan(self, data: dict[str, Any]) -> Plan:
        consul: list[tuple[str, Any]] = []
        token = None
        wait: tuple[str, str] | None = None
        delims = ("{{", "}}")
        templates: list[TemplatePlan] = []
        for key, raw in data.items():
            if key.startswith("__"):
                continue
            line = self.line(key)
            if key == "consul":
                for block in _blocks(raw):
                    token = self.consul(block, consul, line) or token
            elif key == "wait":
                wait = self.wait(raw, line)
            elif key in ("block_query_wait", "max_stale"):
                consul.append((key, _value(raw)))  # both keep their meaning in [consul]
            elif key == "default_delimiters":
                block = _blocks(raw)[0] if _blocks(raw) else {}
                delims = (_value(block.get("left", '"{{"')), _value(block.get("right", '"}}"')))
            elif key == "template":
                for n, block in enumerate(_blocks(raw)):
                    templates.append(self.template(block, self.line("template", nth=n), delims))
            else:
                self.unknown(key, line, top=True)
        return Plan(tuple(consul), token, wait, None, tuple(templates), tuple(self.problems))

    def unknown(self, key: str, line: int, top: bool = False) -> None:
        if key in _MANUAL:
            self.note(line, f"'{key}': {_MANUAL[key]}.", manual=True)
        elif key in _NOTES:
            self.note(line, f"'{key}' is dropped: {_NOTES[key]}.")
        else:
            where = "" if top else " in a template block"
            self.note(
                line,
                f"'{key}'{where} is not a consul-template setting convert knows; convert it by hand.",
                True,
            )

    def consul(self, block: dict[str, Any], out: list[tuple[str, Any]], line: int) -> str | None:
        token = None
        ssl = next(iter(_blocks(block.get("ssl", {}))), {})
        ssl_on = bool(ssl.get("enabled", False))
        for key, raw in block.items():
            value = _value(raw)
            if key == "address":
                address = str(value)
                if ssl_on and "://" not in address:
                    address = "https://" + address
                out.append(("address", address))
            elif key == "token":
                token = str(value)
            elif key == "ssl":
                for k, v in ssl.items():
                    if k in _SSL and k != "server_name":
                        # Relative to the HCL file, as the template paths; sidecar.toml lives elsewhere.
                        out.append((_SSL[k], str(self.path.parent / str(_value(v)))))
                    elif k in _SSL:
                        out.append((_SSL[k], _value(v)))
                    elif k == "verify":
                        out.append(("verify", bool(v)))
                    elif k != "enabled" and not k.startswith("__"):
                        self.unknown(f"ssl.{k}", self.line("ssl", line))
            elif not key.startswith("__"):
                self.unknown(key, self.line(key, line))
        if ssl_on and "address" not in block:
            out.append(("address", "https://127.0.0.1:8500"))  # consul-template's default, over TLS
        return token

    def wait(self, raw: Any, line: int) -> tuple[str, str] | None:
        value = _value(raw)
        if isinstance(value, str):
            low, _, high = value.partition(":")
            return low, high or ""
        block = next(iter(_blocks(raw)), {})
        return str(_value(block.get("min", '"0s"'))), str(_value(block.get("max", '""')))

    def template(self, block: dict[str, Any], line: int, delims: tuple[str, str]) -> TemplatePlan:
        values = {k: _value(v) for k, v in block.items() if not k.startswith("__")}
        base = self.path.parent
        for key in sorted(set(values) - {"source", "destination", "contents", "command", "perms", "backup",
                                         "left_delimiter", "right_delimiter", "wait"}):  # fmt: skip
            self.unknown(key, self.line(key, line))
        if "wait" in values:
            self.note(
                self.line("wait", line), "a template's own 'wait' is dropped: the sidecar has one [wait]."
            )
        destination = values.get("destination")
        if not destination:
            raise ConfigError(f"{self.path}:{line}: a template block has no destination.")
        source = values.get("source")
        return TemplatePlan(
            file=str(self.path),
            line=line,
            destination=base / str(destination),
            source=base / str(source) if source else None,
            contents=values.get("contents"),
            command=values.get("command"),
            perms=self.perms(values.get("perms"), line),
            backup=bool(values.get("backup", False)),
            left=str(values.get("left_delimiter", delims[0])),
            right=str(values.get("right_delimiter", delims[1])),
        )

    def perms(self, value: Any, line: int) -> int | None:
        if value is None:
            return None
        # HCL2 reads 0644 as the decimal 644; consul-template (HCL1) meant octal: read the literal.
        found = re.search(r"perms\s*=\s*\"?(0?[0-7]+|\d+)", self.lines[self.line("perms", line) - 1])
        literal = found.group(1) if found else str(value)
        return int(literal, 8) if literal.startswith("0") or isinstance(value, str) else int(literal)
