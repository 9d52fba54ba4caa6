"""A real nginx loading the Lua module with the snippet, a hooked upstream 'primes', and its endpoint."""

from __future__ import annotations

import http.client
import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.ports import free_port
from renderer.config import DynamicConfig
from renderer.dynamic.snippet import render_snippet
from tests.support.nginx import NginxServer

HOOK = '    balancer_by_lua_block {{ require("upstreams.balancer").balance("{name}") }}\n'
Peer = Mapping[str, Any]


class LuaNginx:
    """An NginxServer with the dynamic snippet; ``push``/``state`` talk to its endpoint."""

    def __init__(self, workdir: Path, workers: int = 2) -> None:
        self.endpoint_port = free_port()
        self.state_file = workdir / "state" / "upstreams-dynamic.json"
        self.state_file.parent.mkdir(parents=True)
        dynamic = DynamicConfig(
            enabled=True, endpoint=("127.0.0.1", self.endpoint_port), state_file=self.state_file
        )
        self.snippet = render_snippet(dynamic)
        self.server = NginxServer(workdir, snippet=self.snippet, workers=workers)
        self.backends = self.server.backends
        self.generation = 0

    def peer(self, backend: str | int, **extra: Any) -> dict[str, Any]:
        """The peer document of backend b1..b4 (or a port number)."""
        port = self.backends[backend] if isinstance(backend, str) else backend
        return {"address": "127.0.0.1", "port": port, **extra}

    def write_upstream(self, servers: Sequence[str], name: str = "primes", hook: bool = True) -> None:
        """The rendered file: ``servers`` are backend names, or none (the empty upstream's down server)."""
        lines = [f"    server 127.0.0.1:{self.backends[s]};\n" for s in servers] or [
            "    server 127.0.0.1:1 down;\n"
        ]
        text = f"upstream {name} {{\n{''.join(lines)}{HOOK.format(name=name) if hook else ''}    keepalive 4;\n}}\n"
        (self.server.conf_d / "upstreams.conf").write_text(text)

    def request(self, method: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.endpoint_port, timeout=10)
        try:
            conn.request(method, "/upstreams/peers", body=body)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()

    def push(
        self, upstreams: Mapping[str, Sequence[Peer]], full: bool = True, generation: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        """POST a document; the generation is the next one unless given."""
        if generation is None:
            generation = self.generation + 1
        status, body = self.send({"generation": generation, "full": full, "upstreams": upstreams})
        if status == 200:
            self.generation = generation
        return status, body

    def send(self, doc: object) -> tuple[int, dict[str, Any]]:
        return self.request("POST", json.dumps(doc).encode())

    def state(self) -> dict[str, Any]:
        status, body = self.request("GET")
        assert status == 200, body
        return body

    def count(self, requests: int) -> Counter[str]:
        """Which backends answered ``requests`` requests through the front server (errors by status)."""
        seen: Counter[str] = Counter()
        for _ in range(requests):
            status, body = self.server.get()
            seen[body if status == 200 else str(status)] += 1
        return seen


@pytest.fixture
def lua_nginx(tmp_path: Path) -> Iterator[LuaNginx]:
    """nginx with two workers, 'primes' hooked over b1 and b2 in the file, nothing in runtime state."""
    nginx = LuaNginx(tmp_path / "nginx")
    nginx.write_upstream(["b1", "b2"])
    nginx.server.start()
    yield nginx
    nginx.server.stop()
