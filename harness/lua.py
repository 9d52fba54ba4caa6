"""nginx with the Lua module and the ``[nginx] dynamic`` snippet: a hooked upstream and its update endpoint.

``LuaNginx`` wraps an ``NginxServer`` (its backends b1..b4, its front server) whose http{} includes the
snippet ``renderer.dynamic.snippet`` builds, and talks to the endpoint synchronously (``push``,
``state``), so tests and benchmarks drive runtime peer updates the same way.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from renderer.config import DynamicConfig
from renderer.dynamic.snippet import render_snippet

from .nginx import START_TIMEOUT, NginxServer
from .ports import free_port

__all__ = ["HOOK", "LuaNginx"]

# The line the macro library renders into each hooked upstream (docs/operations.md).
HOOK = '    balancer_by_lua_block {{ require("upstreams.balancer").balance("{name}") }}\n'


class LuaNginx:
    """An NginxServer including the dynamic snippet; ``push``/``state`` talk to its endpoint."""

    def __init__(
        self,
        workdir: Path,
        workers: int = 2,
        backends: int = 4,
        upstream: str = "primes",
        unix: Path | None = None,
    ) -> None:
        self.endpoint_port = free_port()
        self.unix = unix  # the endpoint on this unix socket instead of a loopback port
        self.state_file = workdir / "state" / "upstreams-dynamic.json"
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        endpoint = None if unix else ("127.0.0.1", self.endpoint_port)
        self.dynamic = DynamicConfig(enabled=True, endpoint=endpoint, unix=unix, state_file=self.state_file)
        self.server = NginxServer(
            workdir,
            backends=backends,
            upstream=upstream,
            snippet=render_snippet(self.dynamic),
            workers=workers,
        )
        self.backends = self.server.backends
        self.generation = 0

    def start(self) -> None:
        """Start nginx; return once a worker (past its start-up, state file read) answers the endpoint."""
        self.server.start()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.state()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.server.stop()  # or it outlives the test that could not start it
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        self.server.stop()

    def peer(self, backend: str | int, **extra: Any) -> dict[str, Any]:
        """The peer document of a backend (b1, b2, ...) or of a port on 127.0.0.1."""
        port = self.backends[backend] if isinstance(backend, str) else backend
        return {"address": "127.0.0.1", "port": port, **extra}

    def write_upstream(self, servers: Sequence[str], name: str = "primes", hook: bool = True) -> None:
        """Write conf.d/upstreams.conf: ``servers`` are backend names; none gives the empty upstream."""
        lines = [f"    server 127.0.0.1:{self.backends[s]};\n" for s in servers]
        body = "".join(lines) or "    server 127.0.0.1:1 down;\n"
        hooked = HOOK.format(name=name) if hook else ""
        self.server.upstreams.write_text(f"upstream {name} {{\n{body}{hooked}    keepalive 4;\n}}\n")

    def request(self, method: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
        """One request to the endpoint: its status and decoded JSON answer."""
        conn = (
            _UnixConnection(self.unix)
            if self.unix
            else http.client.HTTPConnection("127.0.0.1", self.endpoint_port, timeout=10)
        )
        try:
            conn.request(method, "/upstreams/peers", body=body)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()

    def push(
        self,
        upstreams: Mapping[str, Sequence[Mapping[str, Any]]],
        full: bool = True,
        generation: int | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """POST a peer document; its generation is the next one unless given."""
        if generation is None:
            generation = self.generation + 1
        status, body = self.send({"generation": generation, "full": full, "upstreams": upstreams})
        if status == 200:
            self.generation = generation
        return status, body

    def send(self, doc: object) -> tuple[int, dict[str, Any]]:
        """POST any JSON value."""
        return self.request("POST", json.dumps(doc).encode())

    def state(self) -> dict[str, Any]:
        """The runtime state nginx holds (GET)."""
        status, body = self.request("GET")
        if status != 200:
            raise AssertionError(f"GET /upstreams/peers answered {status}: {body}")
        return body

    def count(self, requests: int) -> Counter[str]:
        """Which backends answered ``requests`` requests through the front server (errors by status)."""
        seen: Counter[str] = Counter()
        for _ in range(requests):
            status, body = self.server.get()
            seen[body if status == 200 else str(status)] += 1
        return seen


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (the endpoint's ``unix:/path`` form)."""

    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self.path))
        self.sock = sock
