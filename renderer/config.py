"""The sidecar's configuration: one TOML file, the environment, validated once at start-up."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from discovery.settings import ConsulSettings
from plumbing.errors import ConfigError
from plumbing.status import parse_listen
from plumbing.table import Table, load_toml

__all__ = [
    "DynamicConfig",
    "NginxConfig",
    "SidecarConfig",
    "StatusConfig",
    "TemplateConfig",
    "WaitConfig",
    "load_config",
]

DEFAULT_LISTEN = "127.0.0.1:9119"
CHECK_POLICIES = ("structural", "always")
_ENV_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class WaitConfig:
    """Quiescence: render when quiet for ``min`` after a change, never later than ``max`` after it."""

    min: float = 0.0
    max: float = 0.0


@dataclass(frozen=True)
class DynamicConfig:
    """``[nginx] dynamic``: server-only changes pushed to nginx's Lua balancer at runtime, no reload.

    ``endpoint`` is (host, port) on loopback, or ``unix`` is the socket path; ``state_file`` is the
    JSON file nginx's workers load the peer state from when they start (written beside the files).
    """

    enabled: bool = False
    endpoint: tuple[str, int] | None = ("127.0.0.1", 9180)
    unix: Path | None = None
    state_file: Path = Path("/var/lib/upstreams/dynamic.json")

    @property
    def where(self) -> str:
        """The endpoint as the config spells it: ``host:port`` or ``unix:/path``."""
        if self.unix is not None:
            return f"unix:{self.unix}"
        assert self.endpoint is not None
        host, port = self.endpoint
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class NginxConfig:
    """How to check and reload nginx."""

    check_command: tuple[str, ...] = ("nginx", "-t", "-q")
    pid_file: Path | None = Path("/run/nginx.pid")
    reload_command: tuple[str, ...] | None = None
    dynamic: DynamicConfig = DynamicConfig()
    # "structural": check_command runs before reloads of structural changes and first renders only
    # (a change of IP-literal server lines alone is one nginx cannot refuse); "always": before every reload.
    check: str = "structural"


@dataclass(frozen=True)
class TemplateConfig:
    """One template: its source, where its output goes, and how."""

    source: Path
    destination: Path
    perms: int | None = None
    backup: bool = False
    env: tuple[tuple[str, str], ...] = ()  # variables env() may read, with their values at start-up


@dataclass(frozen=True)
class StatusConfig:
    """Where the status endpoint (/health, /metrics, /status) listens; None: off."""

    listen: tuple[str, int] | None = ("127.0.0.1", 9119)


@dataclass(frozen=True)
class SidecarConfig:
    """Everything the sidecar needs, built once and passed down."""

    path: Path
    consul: ConsulSettings
    wait: WaitConfig
    nginx: NginxConfig
    templates: tuple[TemplateConfig, ...]
    status: StatusConfig = StatusConfig()

    @property
    def template_env(self) -> dict[Path, dict[str, str]]:
        """Per template source, the environment variables its env() may read."""
        return {t.source: dict(t.env) for t in self.templates}


def load_config(path: Path, env: Mapping[str, str]) -> SidecarConfig:
    """Read and validate the sidecar's config file; raise ConfigError naming the file and key at fault."""
    path = path.absolute()
    base = path.parent
    root = Table(load_toml(path), str(path))
    consul = ConsulSettings.from_table(root.table("consul"), env, base)
    templates = _templates(root, base, env)
    config = SidecarConfig(
        path=path,
        consul=consul,
        wait=_wait(root.table("wait")),
        nginx=_nginx(root.table("nginx"), base, templates),
        templates=templates,
        status=_status(root.table("status")),
    )
    root.done()
    return config


def _wait(table: Table) -> WaitConfig:
    low = table.duration("min", 0.0)
    high = table.duration("max", 0.0)
    if high == 0.0 and low > 0.0:
        high = 4 * low  # consul-template's rule when only min is given
    if high < low:
        raise table.error("max", f"({high:g}s) must not be less than 'min' ({low:g}s)")
    table.done()
    return WaitConfig(min=low, max=high)


def _nginx(table: Table, base: Path, templates: tuple[TemplateConfig, ...]) -> NginxConfig:
    dynamic = _dynamic(table, base, templates)
    pid_file = table.path("pid_file", Path("/"))
    reload_command = table.strings("reload_command")
    check_command = table.strings("check_command", ("nginx", "-t", "-q"))
    check = table.string("check", "structural")
    if check not in CHECK_POLICIES:
        raise table.error("check", f'must be "structural" or "always", not {check!r}')
    if pid_file is not None and reload_command is not None:
        raise table.error("reload_command", "cannot be given together with 'pid_file'; choose one")
    if reload_command is not None and not reload_command:
        raise table.error("reload_command", "must name a command")
    if not check_command:
        raise table.error("check_command", "must name a command (nginx must check every render)")
    table.done()
    if reload_command is None and pid_file is None:
        pid_file = Path("/run/nginx.pid")
    assert check_command is not None
    assert check is not None
    return NginxConfig(
        check_command=check_command,
        pid_file=pid_file,
        reload_command=reload_command,
        dynamic=dynamic,
        check=check,
    )


def _dynamic(table: Table, base: Path, templates: tuple[TemplateConfig, ...]) -> DynamicConfig:
    enabled = table.boolean("dynamic", False)
    where = table.string("dynamic_endpoint", "127.0.0.1:9180")
    assert where is not None
    unix: Path | None = None
    endpoint: tuple[str, int] | None = None
    if where.startswith("unix:"):
        unix = Path(where.removeprefix("unix:"))
        if not unix.is_absolute() or str(unix) == "/":
            raise table.error("dynamic_endpoint", f"must be unix:/absolute/path, not {where!r}")
    else:
        endpoint = _loopback(table, where)
    # Beside the rendered files: the sidecar writes it with them, nginx's workers read it at start.
    default_state = templates[0].destination.parent / "upstreams-dynamic.json" if templates else None
    state = table.path("dynamic_state", base)
    state_file = state or default_state or Path("/var/lib/upstreams/dynamic.json")
    return DynamicConfig(enabled=enabled, endpoint=endpoint, unix=unix, state_file=state_file)


def _loopback(table: Table, where: str) -> tuple[str, int]:
    """host:port on a loopback address: the endpoint changes what nginx routes to, so never public."""
    try:
        listen = parse_listen(where, table.where)
    except ConfigError:
        listen = None
    if listen is None:
        raise table.error("dynamic_endpoint", f"must be a loopback host:port or unix:/path, not {where!r}")
    host, port = listen
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise table.error(
            "dynamic_endpoint", f"must listen on loopback (127.0.0.0/8 or ::1) or a unix socket, not {host!r}"
        )
    return host, port


def _templates(root: Table, base: Path, env: Mapping[str, str]) -> tuple[TemplateConfig, ...]:
    tables = root.tables("template")
    if not tables:
        raise ConfigError(f"{root.where}: no [[template]] is configured; there is nothing to render.")
    seen: dict[Path, str] = {}
    out = []
    for table in tables:
        source = table.path("source", base)
        destination = table.path("destination", base)
        if source is None:
            raise table.error("source", "is required")
        if destination is None:
            raise table.error("destination", "is required")
        if not source.is_file():
            raise table.error("source", f"names {source}, which is not a readable file")
        if not destination.parent.is_dir():
            raise table.error("destination", f"is in {destination.parent}, which is not a directory")
        if destination in seen:
            raise table.error("destination", f"{destination} is also the destination of {seen[destination]}")
        seen[destination] = table.where
        out.append(
            TemplateConfig(
                source=source,
                destination=destination,
                perms=_perms(table),
                backup=table.boolean("backup", False),
                env=_env(table, env),
            )
        )
        table.done()
    return tuple(out)


def _env(table: Table, env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    names = table.strings("env", ()) or ()
    for name in names:
        if not _ENV_NAME.match(name):
            raise table.error("env", f"holds {name!r}, which is not an environment variable name")
    # Resolved here, once: templates never read the process environment themselves; unset reads as "".
    return tuple(sorted((name, env.get(name, "")) for name in set(names)))


def _perms(table: Table) -> int | None:
    value = table.raw("perms")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = int(value, 8)
        except ValueError:
            raise table.error("perms", f'must be an octal mode such as "0644", not {value!r}') from None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o7777:
        raise table.error("perms", f'must be an octal mode such as "0644", not {value!r}')
    return value


def _status(table: Table) -> StatusConfig:
    listen = table.string("listen", DEFAULT_LISTEN)
    assert listen is not None
    table.done()
    return StatusConfig(listen=parse_listen(listen, table.where))
