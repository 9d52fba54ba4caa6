"""Declarative service files (``*.toml``, ``*.json`` in ``services_dir``) -> service specs.

One service per file; the format is in docs/registrar.md. Script checks of service files run on the host
(argv, no shell, unless written as ``shell = "..."``). A file that cannot be read keeps its last good
version while the companion runs, so a half-saved edit never deregisters a service.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from discovery.errors import ConfigError
from discovery.table import Table, load_toml

from .spec import (
    MAX_META,
    MAX_META_VALUE,
    STATUSES,
    CheckSpec,
    ServiceSpec,
    valid_meta_key,
    valid_service_name,
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


def load_service_file(path: Path, hostname: str, advertise_address: str) -> ServiceSpec:
    """Read one service file; raise ConfigError naming the file and key at fault."""
    table = Table(_load(path), str(path))
    name = table.string("name")
    if name is None or not valid_service_name(name):
        raise table.error("name", "must be letters, digits, '_', '.', '-' of at most 63 characters")
    if not _STEM.match(path.stem):
        raise ConfigError(f"Service file name {path.name!r} must be letters, digits, '_', '.', '-'.")
    sid = table.string("id") or f"{hostname}:file:{path.stem}"
    if len(sid) > 256 or any(ord(ch) < 32 or ch == "/" for ch in sid):
        raise table.error("id", "must be at most 256 characters without '/' or control characters")
    port = table.integer("port", 0, 0, 65535)
    address = table.string("address") or advertise_address
    tags = table.strings("tags", ()) or ()
    weight = table.raw("weight")
    if weight is not None and (
        isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 65535
    ):
        raise table.error("weight", "must be a whole number from 1 to 65535")
    meta = _meta(table)
    checks = tuple(_check(t, sid, name, i) for i, t in enumerate(table.tables("checks")))
    table.done()
    return ServiceSpec(
        id=sid,
        name=name,
        address=address,
        port=port,
        tags=tuple(dict.fromkeys(tags)),
        meta=meta,
        weight=weight,
        checks=checks,
        origin=f"service file {path.name}",
    )


def _meta(table: Table) -> tuple[tuple[str, str], ...]:
    raw = table.raw("meta")
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise table.error("meta", "must be a table of strings")
    if len(raw) > MAX_META - 2:
        raise table.error("meta", f"has more than {MAX_META - 2} keys")
    for key, value in raw.items():
        if not valid_meta_key(key):
            raise table.error(
                "meta",
                f"has key {key[:80]!r}, which is not [A-Za-z0-9_-], starts with 'consul-' or is reserved",
            )
        if not isinstance(value, str) or len(value) > MAX_META_VALUE:
            raise table.error(
                "meta", f"has a value for {key!r} that is not a string of at most {MAX_META_VALUE} characters"
            )
    return tuple(sorted(raw.items()))


def _check(table: Table, sid: str, name: str, index: int) -> CheckSpec:
    interval = table.duration("interval", 10.0)
    timeout = table.duration("timeout", min(5.0, interval))
    if interval <= 0 or timeout <= 0:
        raise table.error("interval", "and 'timeout' must be above zero")
    deregister_after = table.duration("deregister_after", -1.0)
    if 0 <= deregister_after < 60:
        raise table.error("deregister_after", "must be at least 1m (Consul's minimum)")
    initial = table.string("initial_status")
    if initial is not None and initial not in STATUSES:
        raise table.error("initial_status", f"must be one of {', '.join(STATUSES)}")
    common: dict[str, Any] = {
        "check_id": f"{sid}:check{index + 1}",
        "interval": interval,
        "timeout": timeout,
        "initial_status": initial,
        "deregister_after": deregister_after if deregister_after >= 0 else None,
    }
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
