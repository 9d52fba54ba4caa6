"""The HTTP client to nginx's update endpoint (``[nginx] dynamic_endpoint``): POST and GET the peer document.

A thin edge: it sends bytes ``document.encode`` made and hands back what ``document.decode`` reads, and
translates every failure into the error tree (``DynamicPushFailed`` and below), so the caller's only
decision is "fall back to a reload". Timeouts are short: the endpoint is on loopback, and a push that
hangs costs more than the reload it would save.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from typing import Any

import aiohttp

from plumbing.errors import DynamicPushFailed, DynamicRefused, first_line

from ..config import DynamicConfig
from .document import State, decode
from .state_file import head_generation

__all__ = ["PATH", "TIMEOUT", "EndpointClient"]

PATH = "/upstreams/peers"
TIMEOUT = 5.0  # seconds for one request, connect included; a full push of 5,000 upstreams takes ~30 ms
CONNECT_TIMEOUT = 1.0  # loopback: a listening endpoint accepts at once
MAX_ANSWER = 32 * 1024 * 1024  # a GET answer is the full state; cap what we read of it


class EndpointClient:
    """One aiohttp session to the endpoint (TCP on loopback or a unix socket); close() when done."""

    def __init__(self, config: DynamicConfig) -> None:
        self.where = config.where
        # A new connection per request: a reload stops the workers holding idle ones, and a push on a
        # connection nginx just closed fails for nothing. On loopback a connect costs ~0.1 ms.
        if config.unix is not None:
            self._connector: aiohttp.BaseConnector = aiohttp.UnixConnector(
                path=str(config.unix), limit=2, force_close=True
            )
            self._url = f"http://localhost{PATH}"
        else:
            assert config.endpoint is not None
            host, port = config.endpoint
            self._connector = aiohttp.TCPConnector(limit=2, force_close=True)
            self._url = f"http://{f'[{host}]' if ':' in host else host}:{port}{PATH}"
        timeout = aiohttp.ClientTimeout(total=TIMEOUT, sock_connect=CONNECT_TIMEOUT)
        # No proxy from the environment: the endpoint is local, and its data must never go elsewhere.
        self._session = aiohttp.ClientSession(connector=self._connector, timeout=timeout, trust_env=False)

    async def close(self) -> None:
        """Close the session and its connections."""
        await self._session.close()

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

    async def fetch(self, *, behind: int | None = None) -> State:
        """GET the runtime state nginx holds now; with ``behind``, a state of an older generation comes
        back without its upstreams (after a reload, the sidecar only waits for the new generation)."""
        status, answer = await self._request("GET", None)
        if status != 200:
            raise DynamicPushFailed(
                f"nginx's update endpoint at {self.where} answered {status} to GET {PATH}; expected 200."
            )
        held = head_generation(answer)
        if behind is not None and held is not None and held < behind:
            return State(held, True, {})  # megabytes of JSON not decoded 20 times a second
        # Up to megabytes of JSON: decoded and checked in a thread, never on the event loop.
        return await asyncio.to_thread(
            decode, answer, f"The state nginx's update endpoint at {self.where} answered"
        )

    async def _request(self, method: str, body: bytes | None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        # A file-like body: aiohttp sends megabytes of it in pieces instead of in one blocking write.
        data = io.BytesIO(body) if body is not None else None
        try:
            async with self._session.request(method, self._url, data=data, headers=headers) as resp:
                return resp.status, await _read_all(resp, self.where)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DynamicPushFailed(
                f"nginx's update endpoint at {self.where} did not answer {method} {PATH}: {_reason(exc)}."
            ) from exc


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
