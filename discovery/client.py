"""The asyncio Consul client: py-consul's endpoints over a transport of our own.

The client reuses py-consul's endpoint layer but brings its own aiohttp transport: it caps the number of
connections, sets a timeout that fits each blocking query, builds TLS from our settings, and sends the
token only as the ``X-Consul-Token`` header. Library errors become our ``ConsulError`` family here.
Query paths are built here too, so a name from Consul can never change a path or add a parameter.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import posixpath
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import consul
import consul.aio
import consul.base
from consul.callback import CB

from plumbing.duration import parse_duration
from plumbing.errors import ConsulDenied, ConsulUnavailable, first_line

from .blocking import too_stale
from .decoding import LARGE, Hook, decode
from .settings import ConsulSettings

__all__ = [
    "ConsulClient",
    "agent_silent",
    "consul_errors",
    "kv_prefix",
    "service_path",
    "unservable",
]

log = logging.getLogger("discovery.consul")  # moved from discovery.consul: its log lines keep their name
# Reads that may be answered stale (rule 8 of discovery.blocking); agent endpoints are local anyway.
STALE_READS = ("/v1/health/", "/v1/catalog/", "/v1/kv/")


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
        # Over loopback or a unix socket, compressing costs Consul (and us) more than it saves: at 5,000
        # services a node's answer of 3 MB takes Consul about 70 ms more to gzip than to send.
        plain = {"Accept-Encoding": "identity"} if settings.unix_socket or _loopback(settings.host) else None
        self._session = aiohttp.ClientSession(connector=connector, headers=plain)

    async def _answer(
        self,
        method: str,
        uri: str,
        headers: dict[str, str] | None,
        data: Any,
        connections_timeout: float | None,
        raw: bool,
    ) -> consul.base.Response:
        stale = self._max_stale > 0 and method == "GET" and _stale_read(uri)
        resp = await self._send(
            method, stale_uri(uri) if stale else uri, headers, data, connections_timeout, raw
        )
        if stale and too_stale(resp.headers.get("X-Consul-LastContact"), self._max_stale):
            # Rule 8: that server has not heard from a leader for longer than max_stale; ask the leader.
            log.debug("Stale answer older than max_stale for %s; asking the leader.", uri)
            resp = await self._send(method, uri, headers, data, connections_timeout, raw)
        return resp

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
        resp = await self._answer(method, uri, headers, data, connections_timeout, raw)
        if len(resp.body) >= LARGE:
            # py-consul's callbacks decode with json.loads, which keeps the GIL: in a thread it is at
            # least off the loop; the watch's own large reads use get_json, which yields between items.
            return await asyncio.to_thread(callback, resp)
        return callback(resp)

    async def get_json(
        self, uri: str, headers: dict[str, str] | None, item: Hook | None = None
    ) -> tuple[str, Any]:
        """``(X-Consul-Index, value)`` of a GET, large bodies decoded in a thread; py-consul's error mapping."""
        resp = await self._answer("GET", uri, headers, None, None, False)
        CB._status(resp)  # the same exceptions for the same statuses as py-consul's own callbacks
        try:
            data = None if resp.code == 404 else await decode(resp.body, item)
        except (json.JSONDecodeError, TypeError) as exc:
            raise consul.ConsulException(f"Failed to decode JSON: {first_line(exc)}") from exc
        if "X-Consul-Index" not in resp.headers:
            raise consul.ConsulException(f"Missing index header: {resp.headers}")
        return resp.headers["X-Consul-Index"], data

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


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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


def _blocking(index: int, wait: str) -> list[tuple[str, Any]]:
    """Rule 1 of discovery.blocking: ``wait`` is sent only with an index."""
    return [("index", index), ("wait", wait)] if index else []


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

    async def health_service(
        self, name: str, *, dc: str | None, near: str | None, index: int = 0, wait: str = ""
    ) -> tuple[Any, Any]:
        """``(index, entries)`` of ``/v1/health/service/NAME`` (the name quoted by ``service_path``),
        blocking when ``index`` is given."""
        return await self._get(service_path(name), [("dc", dc), ("near", near), *_blocking(index, wait)])

    async def health_state(
        self,
        *,
        state: str = "any",
        filter: str = "",
        index: int = 0,
        wait: str = "",
        dc: str | None = None,
    ) -> tuple[Any, Any]:
        """``(index, checks)`` of ``/v1/health/state/STATE[?filter=...]``, blocking when ``index`` is given."""
        assert state in ("any", "passing", "warning", "critical"), state  # never a name from Consul
        return await self._get(
            f"/v1/health/state/{state}", [("filter", filter), *_blocking(index, wait), ("dc", dc)]
        )

    async def catalog_services(
        self, *, index: int = 0, wait: str = "", dc: str | None = None
    ) -> tuple[Any, Any]:
        """``(index, {name: tags})`` of ``/v1/catalog/services``, blocking when ``index`` is given."""
        return await self._get("/v1/catalog/services", [*_blocking(index, wait), ("dc", dc)])

    async def catalog_node(
        self, name: str, *, dc: str | None = None, item: Hook | None = None
    ) -> tuple[Any, Any]:
        """``(index, node and services)`` of ``/v1/catalog/node/NAME``, the name quoted as one segment.

        ``item`` sees each service (and each field of the node) as it is decoded (discovery.decoding).
        """
        path = "/v1/catalog/node/" + urllib.parse.quote(name, safe="")
        return await self._get(path, [("dc", dc)], item)

    async def _get(
        self, path: str, params: list[tuple[str, Any]], item: Hook | None = None
    ) -> tuple[Any, Any]:
        pairs = [(key, value) for key, value in params if value]
        query = "?" + urllib.parse.urlencode(pairs) if pairs else ""
        uri = self.http.base_uri + path + query
        return await self.http.get_json(uri, self.prepare_headers(None), item)  # type: ignore[no-any-return]

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
