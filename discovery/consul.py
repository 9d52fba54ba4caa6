"""Consul connection settings (config table + consul's environment conventions) and the asyncio client.

The client reuses py-consul's endpoint layer but brings its own aiohttp transport: it caps the number of
connections, sets a timeout that fits each blocking query, builds TLS from our settings, and sends the
token only as the ``X-Consul-Token`` header. Library errors become our ``ConsulError`` family here.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import consul
import consul.aio
import consul.base
from consul.callback import CB

from .blocking import too_stale
from .duration import parse_duration
from .errors import ConfigError, ConsulDenied, ConsulUnavailable, first_line
from .table import Table

__all__ = [
    "ConsulClient",
    "ConsulSettings",
    "agent_silent",
    "consul_errors",
    "kv_prefix",
    "service_path",
    "unservable",
]

log = logging.getLogger(__name__)
DEFAULT_ADDRESS = "http://127.0.0.1:8500"
# Reads that may be answered stale (rule 8 of discovery.blocking); agent endpoints are local anyway.
STALE_READS = ("/v1/health/", "/v1/catalog/", "/v1/kv/")
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


class _Transport(consul.aio.HTTPClient):  # type: ignore[misc]
    """py-consul's aiohttp adapter, rebuilt without deprecated aiohttp arguments."""

    def __init__(self, settings: ConsulSettings) -> None:
        consul.base.HTTPClient.__init__(
            self, settings.host, settings.port or 80, settings.scheme, settings.verify, None
        )
        connector: aiohttp.BaseConnector
        if settings.unix_socket:
            connector = aiohttp.UnixConnector(path=settings.unix_socket, limit=settings.max_connections)
        else:
            connector = aiohttp.TCPConnector(limit=settings.max_connections, ssl=settings.ssl_context())
        self._server_hostname = settings.tls_server_name
        self._slack = settings.timeout
        self._max_stale = settings.max_stale
        self._session = aiohttp.ClientSession(connector=connector)

    async def _request(
        self,
        callback: Any,
        method: str,
        uri: str,
        headers: dict[str, str] | None,
        data: Any = None,
        connections_timeout: float | None = None,
        raw: bool = False,
    ) -> Any:
        stale = self._max_stale > 0 and method == "GET" and _stale_read(uri)
        resp = await self._send(
            method, stale_uri(uri) if stale else uri, headers, data, connections_timeout, raw
        )
        if stale and too_stale(resp.headers.get("X-Consul-LastContact"), self._max_stale):
            # Rule 8: that server has not heard from a leader for longer than max_stale; ask the leader.
            log.debug("Stale answer older than max_stale for %s; asking the leader.", uri)
            resp = await self._send(method, uri, headers, data, connections_timeout, raw)
        return callback(resp)

    async def _send(
        self,
        method: str,
        uri: str,
        headers: dict[str, str] | None,
        data: Any,
        connections_timeout: float | None,
        raw: bool,
    ) -> consul.base.Response:
        timeout = aiohttp.ClientTimeout(total=connections_timeout or _timeout_for(uri, self._slack))
        extra: dict[str, Any] = {}
        if self._server_hostname:
            extra["server_hostname"] = self._server_hostname
        # Never follow a redirect: Consul answers one for a path it cleans, and it would read another service.
        async with self._session.request(
            method, uri, headers=headers, data=data, timeout=timeout, allow_redirects=False, **extra
        ) as resp:
            if 300 <= resp.status < 400:
                where = resp.headers.get("Location", "?")
                raise consul.ConsulException(f"{resp.status} redirect to {where!r}, not followed")
            body = await resp.read() if raw else await resp.text(encoding="utf-8")
            return consul.base.Response(resp.status, resp.headers, body)


def _stale_read(uri: str) -> bool:
    return urllib.parse.urlsplit(uri).path.startswith(STALE_READS)


def stale_uri(uri: str) -> str:
    """The same request with ``stale`` added to its query string."""
    parts = urllib.parse.urlsplit(uri)
    query = f"{parts.query}&stale" if parts.query else "stale"
    return urllib.parse.urlunsplit(parts._replace(query=query))


def service_path(name: str) -> str:
    """``/v1/health/service/NAME`` with NAME quoted whole, so no character can change the path or the query.

    py-consul leaves ``/`` unquoted; quoting it as ``%2F`` changes nothing for Consul (it reads the decoded
    path), but keeps every name one path segment for anything in between.
    """
    return "/v1/health/service/" + urllib.parse.quote(name, safe="")


def unservable(name: str) -> str | None:
    """Why Consul's HTTP API cannot answer for a service name by path, or None when it can.

    Consul decodes the path before routing: it answers 400 when the path holds a character that is not
    printable (a right-to-left override, a no-break space), and a redirect to another path when cleaning
    the path changes it (``..``, ``.``, ``a//b``, ``a/../b``): that redirect would read another service.
    """
    if not name.isprintable():
        return "Consul's HTTP API refuses paths with characters that are not printable"
    if _rewritten("/v1/health/service/" + name):
        return "Consul's HTTP API rewrites paths with '.', '..' or '//' segments to another path"
    return None


def kv_prefix(prefix: str) -> str:
    """The longest start of ``prefix`` that Consul reads by path as it is, for a recursive KV read.

    A recursive read of a shorter prefix still holds every key of the longer one (the caller picks the
    exact keys from the answer), so a key with ``..``, ``//`` or an unprintable character is read too.
    """
    while prefix and (not prefix.isprintable() or _rewritten("/v1/kv/" + prefix)):
        prefix = prefix[:-1]
    return prefix


def _rewritten(path: str) -> bool:
    """Whether Consul's router (Go's path cleaning, which keeps a trailing slash) changes this path."""
    cleaned = posixpath.normpath(path) + ("/" if path.endswith("/") else "")
    return cleaned != path


def _timeout_for(uri: str, slack: float) -> float:
    """A blocking query may hang for wait plus wait/16 of jitter; give it that plus ``slack``."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
    if "wait" in query and "index" in query:
        return parse_duration(query["wait"][0]) * 17 / 16 + slack
    return slack


class ConsulClient(consul.aio.Consul):  # type: ignore[misc]
    """py-consul's asyncio client on our transport; create it inside a running event loop."""

    def __init__(self, settings: ConsulSettings) -> None:
        self.settings = settings
        super().__init__(
            host=settings.host, port=settings.port, scheme=settings.scheme, verify=settings.verify
        )
        # py-consul lets CONSUL_HTTP_TOKEN override an explicit token; our settings already decided.
        self.token = settings.token

    def http_connect(self, host: str, port: int, scheme: str, verify: Any = True, cert: Any = None) -> Any:
        return _Transport(self.settings)

    async def health_service(self, name: str, *, dc: str | None, near: str | None) -> tuple[Any, Any]:
        """``(index, entries)`` of ``/v1/health/service/NAME``, the name quoted by ``service_path``."""
        params = [(key, value) for key, value in (("dc", dc), ("near", near)) if value]
        query = "?" + urllib.parse.urlencode(params) if params else ""
        uri = self.http.base_uri + service_path(name) + query
        return await self.http._request(CB.json(index=True), "GET", uri, self.prepare_headers(None))  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Close the connection pool."""
        await self.http._session.close()


@contextlib.asynccontextmanager
async def consul_errors(what: str) -> AsyncIterator[None]:
    """Translate library and network errors into ConsulError subclasses naming ``what`` was asked."""
    try:
        yield
    except consul.ACLPermissionDenied as exc:
        raise ConsulDenied(f"Consul refused the ACL token for {what}: {first_line(exc)}.") from exc
    except (consul.ConsulException, consul.Timeout) as exc:
        raise ConsulUnavailable(f"Consul could not answer {what}: {first_line(exc)}.") from exc
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise ConsulUnavailable(f"Consul is unreachable for {what}: {first_line(exc)}.") from exc


def agent_silent(exc: BaseException) -> bool:
    """Whether a ConsulError from ``consul_errors`` means the agent gave no HTTP answer at all."""
    return isinstance(exc.__cause__, (aiohttp.ClientError, TimeoutError, OSError))
