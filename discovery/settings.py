"""Consul connection settings: the ``[consul]`` table plus Consul's own environment conventions.

Built once at start-up (``ConsulSettings.from_table``) and passed down; the environment comes in as a
mapping, never read here. ``discovery.client`` turns these settings into connections.
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from plumbing.errors import ConfigError
from plumbing.table import Table

__all__ = ["ConsulSettings"]

DEFAULT_ADDRESS = "http://127.0.0.1:8500"
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True, kw_only=True)
class ConsulSettings:
    """Where Consul is and how to talk to it; built once at start-up."""

    scheme: str = "http"
    host: str = "127.0.0.1"
    port: int = 8500
    unix_socket: str | None = None
    token: str | None = field(default=None, repr=False)  # never printed
    ca_file: Path | None = None
    ca_path: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify: bool = True
    tls_server_name: str | None = None
    max_connections: int = 8
    block_query_wait: float = 300.0
    timeout: float = REQUEST_TIMEOUT
    max_stale: float = 0.0  # 0: every read answered by the leader (Consul's default mode)

    @property
    def address(self) -> str:
        """The address as a URL, for messages."""
        if self.unix_socket:
            return f"unix://{self.unix_socket}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @classmethod
    def from_table(cls, table: Table, env: Mapping[str, str], base: Path) -> ConsulSettings:
        """Build settings from the ``[consul]`` table; environment variables fill what the file leaves out."""
        address = table.string("address") or env.get("CONSUL_HTTP_ADDR") or DEFAULT_ADDRESS
        use_ssl = _env_bool(env, "CONSUL_HTTP_SSL")
        scheme, host, port, unix = _parse_address(address, https=bool(use_ssl), where=table.where)
        token = _read_token(table, env, base)
        verify_env = _env_bool(env, "CONSUL_HTTP_SSL_VERIFY")
        verify = table.boolean("verify", True if verify_env is None else verify_env)

        def tls_path(key: str, env_name: str) -> Path | None:
            configured = table.path(key, base)
            if configured is None and env.get(env_name):
                configured = Path(env[env_name])
            if configured is not None and not configured.exists():
                raise table.error(key, f"names {configured}, which does not exist")
            return configured

        settings = cls(
            scheme=scheme,
            host=host,
            port=port,
            unix_socket=unix,
            token=token,
            ca_file=tls_path("ca_file", "CONSUL_CACERT"),
            ca_path=tls_path("ca_path", "CONSUL_CAPATH"),
            cert_file=tls_path("cert_file", "CONSUL_CLIENT_CERT"),
            key_file=tls_path("key_file", "CONSUL_CLIENT_KEY"),
            verify=verify,
            tls_server_name=table.string("tls_server_name") or env.get("CONSUL_TLS_SERVER_NAME") or None,
            max_connections=table.integer("max_connections", 8, 2, 64),
            block_query_wait=_bounded(table, "block_query_wait", 300.0, 1.0, 600.0),
            timeout=_bounded(table, "timeout", REQUEST_TIMEOUT, 0.1, 600.0),
            max_stale=_bounded(table, "max_stale", 0.0, 0.0, 86400.0),
        )
        if (settings.cert_file is None) != (settings.key_file is None):
            raise table.error("cert_file", "and 'key_file' must be given together")
        table.done()
        return settings

    def ssl_context(self) -> ssl.SSLContext | bool:
        """Return the TLS context for https (or True for the system defaults), False for plain http."""
        if self.scheme != "https":
            return False
        ctx = ssl.create_default_context(cafile=self.ca_file, capath=self.ca_path)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file and self.key_file:
            try:
                ctx.load_cert_chain(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"Cannot load the Consul client certificate {self.cert_file}: {exc}."
                ) from exc
        return ctx


def _bounded(table: Table, key: str, default: float, low: float, high: float) -> float:
    value = table.duration(key, default)
    if not low <= value <= high:
        raise table.error(key, f"must be between {low:g}s and {high:g}s, not {value:g}s")
    return value


def _env_bool(env: Mapping[str, str], name: str) -> bool | None:
    value = env.get(name)
    if value is None or value == "":
        return None
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise ConfigError(f"Environment variable {name} must be true or false, not {value!r}.")


def _parse_address(address: str, *, https: bool, where: str) -> tuple[str, str, int, str | None]:
    """Split ``host:port``, ``http(s)://host:port`` or ``unix:///path`` (consul's CONSUL_HTTP_ADDR forms)."""
    if address.startswith("unix://"):
        return "http", "consul", 0, address[len("unix://") :]
    text = address if "://" in address else ("https://" if https else "http://") + address
    parts = urllib.parse.urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or port == -1
        or parts.path not in ("", "/")
    ):
        raise ConfigError(
            f"{where}: Consul address {address!r} is not host:port, http(s)://host:port or unix:///path."
        )
    scheme = "https" if https else parts.scheme
    return scheme, parts.hostname, port or (8501 if scheme == "https" else 8500), None


def _read_token(table: Table, env: Mapping[str, str], base: Path) -> str | None:
    """token_file (config) wins over CONSUL_HTTP_TOKEN_FILE, which wins over CONSUL_HTTP_TOKEN."""
    path = table.path("token_file", base)
    if path is None and env.get("CONSUL_HTTP_TOKEN_FILE"):
        path = Path(env["CONSUL_HTTP_TOKEN_FILE"])
    if path is None:
        return env.get("CONSUL_HTTP_TOKEN") or None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the Consul token file {path}: {exc}.") from exc
    if not token:
        raise ConfigError(f"The Consul token file {path} is empty.")
    return token
