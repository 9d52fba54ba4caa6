"""The HTTP client to nginx's update endpoint (``[nginx] dynamic_endpoint``): POST and GET the peer document.

A thin edge: it sends bytes ``document.encode`` made and hands back what nginx answered, and translates
every failure into the error tree (``DynamicPushFailed`` and below), so the caller's only decision is
"fall back to a reload". Timeouts are short: the endpoint is on loopback, and a push that hangs costs
more than the reload it would save.

Requests reuse one idle connection (keep-alive): a new one per push cost about 2 ms of a flip at 5,000
services, on both sides. A reload stops the workers holding idle connections, so a request on one that
nginx has just closed, failing before any answer, is sent once more on a new connection; every other
failure is final. A POST sent again that nginx had applied after all is answered 409 with its own
generation, which the pusher counts as done (``drift.held_already``).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp

from plumbing.errors import DynamicPushFailed, DynamicRefused, first_line

from ..config import DynamicConfig
from .document import State, decode

__all__ = ["KEEPALIVE", "PATH", "TIMEOUT", "EndpointClient", "Tried"]

log = logging.getLogger(__name__)
PATH = "/upstreams/peers"
TIMEOUT = 5.0  # seconds for one request, connect included; a full push of 5,000 upstreams takes ~30 ms
CONNECT_TIMEOUT = 1.0  # loopback: a listening endpoint accepts at once
MAX_ANSWER = 32 * 1024 * 1024  # a GET answer is the full state; cap what we read of it
# Seconds an idle connection is kept: over the drift check's 30 s, so a quiet sidecar keeps its one
# connection, and under the snippet's keepalive_timeout (75 s), so the sidecar closes it before nginx does.
KEEPALIVE = 60.0


@dataclass
class Tried:
    """What one request did with connections (aiohttp's trace hooks fill it in)."""

    # The connection it went out on last came from the pool. aiohttp itself sends a GET once more on
    # another (maybe idle too: two are kept when a push and a sync overlapped); only the last one counts.
    reused: bool = False
    answered: bool = False  # nginx's status line arrived

    def closed_idle(self, exc: BaseException) -> bool:
        """Whether ``exc`` is nginx closing the idle connection this request reused, before any answer."""
        lost = isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)
        connect = isinstance(exc, aiohttp.ClientConnectorError)  # a new connection: nothing was reused
        return lost and not connect and self.reused and not self.answered


class EndpointClient:
    """Two aiohttp sessions to the endpoint (TCP on loopback or a unix socket); close() when done.

    One keeps its connections alive; the other opens a new one per request, for the second try only.
    """

    def __init__(self, config: DynamicConfig) -> None:
        self.where = config.where
        if config.unix is not None:
            self._url = f"http://localhost{PATH}"
        else:
            assert config.endpoint is not None
            host, port = config.endpoint
            self._url = f"http://{f'[{host}]' if ':' in host else host}:{port}{PATH}"
        trace = aiohttp.TraceConfig()
        trace.on_connection_reuseconn.append(_reused)
        trace.on_connection_create_start.append(_opened)
        self._session = _session(config, trace, fresh=False)
        self._fresh = _session(config, None, fresh=True)

    async def close(self) -> None:
        """Close the sessions and their connections."""
        await self._session.close()
        await self._fresh.close()

    async def push(self, body: bytes) -> int:
        """POST a document; the generation nginx now holds. DynamicRefused when it says no."""
        status, answer = await self._request("POST", body)
        doc = _json(answer)
        if status == 200 and isinstance(doc.get("generation"), int):
            return int(doc["generation"])
        reason = (
            doc.get("error") if isinstance(doc.get("error"), str) else answer[:200].decode("utf-8", "replace")
        )
        current = doc.get("generation") if isinstance(doc.get("generation"), int) else None
        raise DynamicRefused(
            f"nginx's update endpoint at {self.where} refused the update ({status}): {str(reason).rstrip('.')}.",
            status=status,
            current=current,
        )

    async def fetch_text(self) -> bytes:
        """GET the runtime state nginx holds now, as the bytes it answered (``read`` decodes them)."""
        status, answer = await self._request("GET", None)
        if status != 200:
            raise DynamicPushFailed(
                f"nginx's update endpoint at {self.where} answered {status} to GET {PATH}; expected 200."
            )
        return answer

    async def read(self, answer: bytes) -> State:
        """A GET answer decoded and checked (DynamicUpdateInvalid), in a thread: it may be megabytes."""
        return await asyncio.to_thread(
            decode, answer, f"The state nginx's update endpoint at {self.where} answered"
        )

    async def fetch(self) -> State:
        """GET the runtime state nginx holds now, decoded."""
        return await self.read(await self.fetch_text())

    async def _request(self, method: str, body: bytes | None) -> tuple[int, bytes]:
        tried = Tried()
        try:
            try:
                return await self._send(self._session, method, body, tried)
            except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
                if not tried.closed_idle(exc):
                    raise
            # nginx closed the idle connection as this request went out (a reload stops the workers
            # holding them): nothing was answered, so it is sent once more, on a connection of its own.
            log.debug("nginx closed the idle connection to %s; sending %s again.", self.where, method)
            return await self._send(self._fresh, method, body, Tried())
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DynamicPushFailed(
                f"nginx's update endpoint at {self.where} did not answer {method} {PATH}: {_reason(exc)}."
            ) from exc

    async def _send(
        self, session: aiohttp.ClientSession, method: str, body: bytes | None, tried: Tried
    ) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        # A file-like body: aiohttp sends megabytes of it in pieces instead of in one blocking write.
        data = io.BytesIO(body) if body is not None else None
        request = session.request(method, self._url, data=data, headers=headers, trace_request_ctx=tried)
        async with request as resp:
            tried.answered = True
            return resp.status, await _read_all(resp, self.where)


def _session(
    config: DynamicConfig, trace: aiohttp.TraceConfig | None, *, fresh: bool
) -> aiohttp.ClientSession:
    # Two at most: a push may go out while a sync reads.
    keep: dict[str, Any] = {"force_close": True} if fresh else {"keepalive_timeout": KEEPALIVE}
    connector: aiohttp.BaseConnector
    if config.unix is not None:
        connector = aiohttp.UnixConnector(path=str(config.unix), limit=2, **keep)
    else:
        connector = aiohttp.TCPConnector(limit=2, **keep)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT, sock_connect=CONNECT_TIMEOUT)
    # No proxy from the environment: the endpoint is local, and its data must never go elsewhere.
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, trust_env=False, trace_configs=[trace] if trace else None
    )


async def _reused(_: aiohttp.ClientSession, context: SimpleNamespace, __: object) -> None:
    _took(context.trace_request_ctx, reused=True)


async def _opened(_: aiohttp.ClientSession, context: SimpleNamespace, __: object) -> None:
    _took(context.trace_request_ctx, reused=False)


def _took(tried: object, *, reused: bool) -> None:
    if isinstance(tried, Tried):  # every request here passes one; anything else is not ours to count
        tried.reused = reused


async def _read_all(resp: aiohttp.ClientResponse, where: str) -> bytes:
    """The whole answer, up to MAX_ANSWER (``content.read(n)`` returns what has arrived so far)."""
    chunks, size = [], 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > MAX_ANSWER:
            raise DynamicPushFailed(
                f"The answer of nginx's update endpoint is larger than {MAX_ANSWER} bytes."
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _reason(exc: BaseException) -> str:
    """Why a request failed, in words (aiohttp's own text names its connector and SSL context)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        # asyncio words a refused connect as "Connect call failed (host, port)": the errno says it plainly.
        cause = os.strerror(error.errno) if error.errno else error.strerror or type(error).__name__
        return f"could not connect ({cause.lower()}; is nginx running with the snippet included?)"
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return f"no answer within {TIMEOUT:g}s"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "nginx closed the connection before answering"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return first_line(exc).rstrip(".") or type(exc).__name__


def _json(answer: bytes) -> dict[str, Any]:
    """The answer's JSON object, or {} when it is not one (an nginx error page, say)."""
    try:
        doc = json.loads(answer)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
