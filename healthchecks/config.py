"""The companion's configuration: the shared ``[consul]`` table and ``[registrar]``, read once, strictly.

See docs/registrar.md for every key.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from discovery.settings import ConsulSettings
from plumbing.errors import ConfigError
from plumbing.status import parse_listen
from plumbing.table import Table, load_toml

from .labels import HostSettings
from .runc_exec import RuncExec

__all__ = ["RegistrarConfig", "load_config"]

DEFAULT_ENGINE = "unix:///var/run/docker.sock"
DEFAULT_LISTEN = "127.0.0.1:9120"  # the sidecar's is 9119: both can run on one host
DEFAULT_RUNC_ROOT = "/run/runc"  # runc's own default, where rootful Podman with runc keeps its state
CHECK_EXECS = ("engine", "runc")
_OWNER = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True, kw_only=True)
class RegistrarConfig:
    """Everything ``upstreams-registrar run`` needs, built once at start-up."""

    path: Path
    consul: ConsulSettings
    engine: str | None  # None: containers are not watched (services_dir only)
    host: HostSettings
    resync: float = 30.0
    services_dir: Path | None = None
    deregister_on_stop: bool = True
    stop_timeout: float = 5.0
    check_output_limit: int = 4096
    # Where /health, /metrics and /status are served; None: off (load_config defaults to DEFAULT_LISTEN).
    status: tuple[str, int] | None = None
    # Set: container script checks run by ``runc exec`` on this state ([checks] exec = "runc").
    runc: RuncExec | None = None

    @property
    def owner(self) -> str:
        """The marker value this host's registrations carry."""
        return self.host.hostname


def load_config(path: Path, env: Mapping[str, str]) -> RegistrarConfig:
    """Read and validate the config file; raise ConfigError naming the file and key at fault."""
    root = Table(load_toml(path), str(path))
    base = path.parent
    consul = ConsulSettings.from_table(root.table("consul"), env, base)
    reg = root.table("registrar")
    status = _status(root.table("status"))
    runc = _checks(root.table("checks"), base)
    root.done()
    watch_containers = reg.boolean("containers", True)
    engine = _engine(reg, env)
    host = _host(reg)
    resync = reg.duration("resync", 30.0)
    if resync < 1.0:
        raise reg.error("resync", "must be at least 1s")
    services_dir = reg.path("services_dir", base)
    if services_dir is not None and not services_dir.is_dir():
        raise reg.error("services_dir", f"names {services_dir}, which is not a directory")
    config = RegistrarConfig(
        path=path,
        consul=consul,
        engine=engine if watch_containers else None,
        host=host,
        resync=resync,
        services_dir=services_dir,
        deregister_on_stop=reg.boolean("deregister_on_stop", True),
        stop_timeout=reg.duration("stop_timeout", 5.0),
        check_output_limit=reg.integer("check_output_limit", 4096, 256, 1 << 20),
        status=status,
        runc=runc,
    )
    reg.done()
    if config.engine is None and services_dir is None:
        raise ConfigError(f"{path} [registrar]: with containers = false, 'services_dir' is needed.")
    return config


def _engine(reg: Table, env: Mapping[str, str]) -> str:
    """``engine``: the container engine's API address (``DOCKER_HOST`` when unset)."""
    engine = reg.string("engine") or env.get("DOCKER_HOST") or DEFAULT_ENGINE
    if not engine.startswith(("unix://", "tcp://", "http://", "https://")):
        raise reg.error("engine", f"must be unix:///path or tcp://host:port, not {engine!r}")
    return engine


def _host(reg: Table) -> HostSettings:
    """``hostname``, ``advertise_address``, ``internal`` and ``explicit``: what this host registers as."""
    hostname = reg.string("hostname") or socket.gethostname()
    if not _OWNER.match(hostname):
        raise reg.error("hostname", "must be 1 to 128 letters, digits, '.', '_', ':' or '-'")
    advertise = reg.string("advertise_address", "127.0.0.1") or ""
    try:
        ipaddress.ip_address(advertise)
    except ValueError:
        if not re.match(r"^[A-Za-z0-9.-]{1,253}$", advertise):
            raise reg.error("advertise_address", "must be an IP address or a host name") from None
    return HostSettings(
        hostname=hostname,
        advertise_address=advertise,
        internal=reg.boolean("internal", False),
        explicit=reg.boolean("explicit", False),
    )


def _checks(table: Table, base: Path) -> RuncExec | None:
    """``[checks]``: how container script checks are run; None for the engine's exec API (the default)."""
    how = table.string("exec", "engine")
    if how not in CHECK_EXECS:
        raise table.error("exec", f"must be one of {', '.join(CHECK_EXECS)}, not {how!r}")
    root = table.path("runc_root", base, DEFAULT_RUNC_ROOT)
    binary = table.string("runc", "runc") or "runc"
    table.done()
    if how == "engine" or root is None:
        return None
    return RuncExec(root=root, binary=binary)


def _status(table: Table) -> tuple[str, int] | None:
    listen = table.string("listen", DEFAULT_LISTEN)
    table.done()
    return parse_listen(listen or "", table.where)
