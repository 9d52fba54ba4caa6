"""``upstreams status``: ask the running sidecar what it sees, and print it as a table."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

from plumbing.errors import ConfigError, UpstreamsError

from .config import SidecarConfig

__all__ = ["format_status", "show_status"]

MARK = {"passing": "ok", "warning": "WARN", "critical": "CRIT"}


def fetch_status(config: SidecarConfig) -> dict[str, Any]:
    """GET /status from the sidecar's status endpoint."""
    if config.status.listen is None:
        raise ConfigError(
            f"{config.path} [status]: 'listen' is empty, so the sidecar serves no status to ask."
        )
    host, port = config.status.listen
    host = f"[{host}]" if ":" in host else host
    url = f"http://{host}:{port}/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UpstreamsError(
            f"No sidecar answers at {url} ({reason}); is `upstreams watch` running?"
        ) from exc


def format_status(status: dict[str, Any]) -> str:
    """The status as a table: one line per instance, grouped by service."""
    lines = [
        f"sidecar: {'healthy' if status.get('healthy') else 'UNHEALTHY: ' + str(status.get('reason'))}",
        f"consul:  {status.get('consul')}    nginx reloads: {status.get('reloads')}",
        *_dynamic_line(status.get("dynamic")),
        "",
        f"{'SERVICE':<24} {'INSTANCE':<28} {'ADDRESS':<24} {'NODE':<16} HEALTH",
    ]
    for service, instances in sorted(status.get("services", {}).items()):
        if not instances:
            lines.append(f"{service:<24} {'(no instances)':<28}")
        for i in instances:
            address = f"{i['address']}:{i['port']}"
            lines.append(
                f"{service:<24} {i['id']:<28} {address:<24} {i['node']:<16} {MARK.get(i['status'], i['status'])}"
            )
    for e in status.get("excluded", []):
        # Left out because nginx rejected the line written from them (see docs/operations.md).
        lines.append(f"left out: {e['service']} {e['id']} ({e['address']}:{e['port']}): {e['reason']}")
    return "\n".join(lines) + "\n"


def _dynamic_line(dynamic: Any) -> list[str]:
    """The mode line, for a sidecar in dynamic mode (a classic one shows what it always did)."""
    if not isinstance(dynamic, dict) or dynamic.get("mode") != "dynamic":
        return []
    line = f"mode:    dynamic ({dynamic.get('endpoint')})    generation: {dynamic.get('generation')}"
    line += f"    last push: {dynamic.get('last_push') or 'none yet'}"
    if dynamic.get("last_error"):
        line += f"\n         last push failed: {dynamic['last_error']}"
    return [line]


def show_status(config: SidecarConfig, *, as_json: bool) -> int:
    """Print the running sidecar's view; exit 0 when it is healthy, 1 otherwise."""
    status = fetch_status(config)
    sys.stdout.write(
        json.dumps(status, indent=2, sort_keys=True) + "\n" if as_json else format_status(status)
    )
    return 0 if status.get("healthy") else 1
