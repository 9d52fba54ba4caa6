"""The status endpoint both daemons serve: /health, /metrics (Prometheus) and /status (JSON)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .errors import ConfigError

__all__ = ["Health", "StatusServer", "parse_listen"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    """Whether a daemon is healthy, and if not, why (a sentence)."""

    ok: bool
    reason: str = ""
    details: dict[str, Any] | None = None


def parse_listen(value: str, where: str) -> tuple[str, int] | None:
    """``"127.0.0.1:9119"`` -> (host, port); ``""`` -> None (off). IPv6 as ``[::1]:9119``."""
    if value == "":
        return None
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"{where}: key 'listen' must be host:port such as \"127.0.0.1:9119\", not {value!r}."
        )
    return host, int(port)


class StatusServer:
    """A small aiohttp server; start it inside the daemon's TaskGroup and cancel to stop."""

    def __init__(
        self,
        address: tuple[str, int],
        *,
        health: Callable[[], Health],
        registry: CollectorRegistry,
        status: Callable[[], dict[str, Any]],
    ) -> None:
        self.address = address
        self._health, self._registry, self._status = health, registry, status

    async def _get_health(self, _: web.Request) -> web.Response:
        health = self._health()
        body = {
            "status": "ok" if health.ok else "unhealthy",
            "reason": health.reason,
            **(health.details or {}),
        }
        return web.json_response(body, status=200 if health.ok else 503)

    async def _get_metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _get_status(self, _: web.Request) -> web.Response:
        return web.json_response(self._status(), dumps=lambda v: json.dumps(v, indent=2, sort_keys=True))

    async def serve(self) -> None:
        """Serve until cancelled; a port that cannot be bound is a ConfigError naming it."""
        app = web.Application()
        app.add_routes(
            [
                web.get("/health", self._get_health),
                web.get("/metrics", self._get_metrics),
                web.get("/status", self._get_status),
            ]
        )
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        host, port = self.address
        try:
            site = web.TCPSite(runner, host, port, reuse_address=True)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"Cannot serve the status endpoint on {host}:{port}: {exc.strerror or exc}."
            ) from exc
        log.info(
            "Status endpoint on http://%s:%d/ (health, metrics, status).",
            host if ":" not in host else f"[{host}]",
            port,
        )
        try:
            await asyncio.Future()
        finally:
            await runner.cleanup()
