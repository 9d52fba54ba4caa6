"""Declarative service files (``*.toml``, ``*.json`` in ``services_dir``) -> service specs.

One service per file; the format is in docs/registrar.md. Script checks of service files run on the host
(argv, no shell, unless written as ``shell = "..."``). A file that cannot be read keeps its last good
version while the companion runs, so a half-saved edit never deregisters a service.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from plumbing.errors import ConfigError
from plumbing.table import Table, load_toml

from .spec import (
    CheckSpec,
    Problem,
    ServiceSpec,
    Timing,
    build_meta,
    build_timing,
    id_problem,
    name_problem,
    weight_problem,
)

__all__ = ["ServiceFiles", "load_service_file"]

log = logging.getLogger(__name__)
SUFFIXES = (".toml", ".json")
_STEM = re.compile(r"^[A-Za-z0-9_.-]+$")


def _load(path: Path) -> dict[str, Any]:
    if path.suffix == ".toml":
        return load_toml(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"Cannot read service file {path}: {exc.strerror or exc}.") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"Service file {path} is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"Service file {path} must hold one JSON object.")
    return data


def _raise_first(table: Table, problems: Iterable[Problem | None]) -> None:
    """Service files are strict: the first problem a builder found is the file's error."""
    for problem in problems:
        if problem is None:
            continue
        if problem.part:  # "key 'meta' has key 'consul-x', which is not ..."
            raise table.error(problem.field, f"has {problem.part}, which {problem.says}")
        raise table.error(problem.field, problem.says)


def load_service_file(path: Path, hostname: str, advertise_address: str) -> ServiceSpec:
    """Read one service file; raise ConfigError naming the file and key at fault."""
    table = Table(_load(path), str(path))
    name = table.string("name")
    _raise_first(table, [name_problem(name or "")])
    if not _STEM.match(path.stem):
        raise ConfigError(f"Service file name {path.name!r} must be letters, digits, '_', '.', '-'.")
    sid = table.string("id") or f"{hostname}:file:{path.stem}"
    weight = table.raw("weight")
    _raise_first(table, [id_problem(sid), None if weight is None else weight_problem(weight)])
    spec = ServiceSpec(
        id=sid,
        name=str(name),
        address=table.string("address") or advertise_address,
        port=table.integer("port", 0, 0, 65535),
        tags=tuple(dict.fromkeys(table.strings("tags", ()) or ())),
        meta=_meta(table),
        weight=weight,
        checks=tuple(_check(t, sid, str(name), i) for i, t in enumerate(table.tables("checks"))),
        origin=f"service file {path.name}",
    )
    table.done()
    return spec


def _meta(table: Table) -> tuple[tuple[str, str], ...]:
    raw = table.raw("meta")
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise table.error("meta", "must be a table of strings")
    meta, problems = build_meta(raw.items())
    _raise_first(table, problems)
    return meta


def _given_duration(table: Table, key: str) -> float | None:
    """None when absent: a given zero must be refused, not taken for the default."""
    return None if table.raw(key) is None else table.duration(key, 0.0)


def _timing(table: Table) -> Timing:
    timing, problems = build_timing(
        interval=_given_duration(table, "interval"),
        timeout=_given_duration(table, "timeout"),
        initial_status=table.string("initial_status"),
        deregister_after=_given_duration(table, "deregister_after"),
    )
    _raise_first(table, problems)
    return timing


def _check(table: Table, sid: str, name: str, index: int) -> CheckSpec:
    common: dict[str, Any] = {"check_id": f"{sid}:check{index + 1}", **asdict(_timing(table))}
    http, tcp, ttl = table.string("http"), table.string("tcp"), table.raw("ttl")
    script, shell = table.strings("script"), table.string("shell")
    given = [
        k for k, v in (("http", http), ("tcp", tcp), ("ttl", ttl), ("script", script), ("shell", shell)) if v
    ]
    if len(given) != 1:
        raise ConfigError(
            f"{table.where}: a check needs exactly one of 'http', 'tcp', 'ttl', 'script' or 'shell'."
        )
    if http:
        if not http.startswith(("http://", "https://")):
            raise table.error("http", "must be an http:// or https:// URL")
        spec = CheckSpec(kind="http", name=f"{name} http", target=http, **common)
    elif tcp:
        spec = CheckSpec(kind="tcp", name=f"{name} tcp", target=tcp, **common)
    elif ttl:
        spec = CheckSpec(kind="ttl", name=f"{name} ttl", ttl=table.duration("ttl", 0.0), **common)
    else:
        argv = tuple(script) if script else ("/bin/sh", "-c", shell or "")
        spec = CheckSpec(kind="script", name=f"{name} script", argv=argv, **common)
    table.done()
    return spec


@dataclass
class ServiceFiles:
    """The specs of a services directory; files that turn bad keep their last good version."""

    directory: Path
    hostname: str
    advertise_address: str
    _good: dict[Path, ServiceSpec] = field(default_factory=dict)
    _errors: dict[Path, str] = field(default_factory=dict)

    def paths(self) -> list[Path]:
        """The service files, sorted (hidden and editor temporary files are ignored)."""
        try:
            entries = list(self.directory.iterdir())
        except OSError as exc:
            raise ConfigError(
                f"Cannot list the services directory {self.directory}: {exc.strerror or exc}."
            ) from exc
        return sorted(
            p for p in entries if p.suffix in SUFFIXES and not p.name.startswith(".") and p.is_file()
        )

    def load(self) -> tuple[ServiceSpec, ...]:
        """Read every file again; log each new error once."""
        present = set(self.paths())
        for path in present:
            try:
                self._good[path] = load_service_file(path, self.hostname, self.advertise_address)
                self._errors.pop(path, None)
            except ConfigError as exc:
                if self._errors.get(path) != str(exc):
                    log.error("%s%s", exc, " Keeping its last good version." if path in self._good else "")
                self._errors[path] = str(exc)
        for gone in set(self._good) - present:
            del self._good[gone]
        for gone in set(self._errors) - present:
            del self._errors[gone]
        return tuple(self._good[p] for p in sorted(self._good))

    def check_all(self) -> list[ConfigError]:
        """Validate every file (for ``upstreams-registrar check``); return the errors."""
        errors = []
        for path in self.paths():
            try:
                load_service_file(path, self.hostname, self.advertise_address)
            except ConfigError as exc:
                errors.append(exc)
        return errors
