"""The sidecar in dynamic mode against a real Consul and an nginx loading the Lua module (LuaNginx)."""

from __future__ import annotations

import re
from pathlib import Path

from harness.ports import free_port
from tests.renderer.dynamic.conftest import LuaNginx
from tests.support.consul_agent import ConsulAgent
from tests.support.http import get
from tests.support.sidecar import write_config


def dynamic_config(
    tmp_path: Path,
    consul: ConsulAgent,
    nginx: LuaNginx,
    *,
    endpoint_port: int | None = None,
    status: str = "",
    template: str | None = None,
) -> Path:
    """A sidecar config with ``dynamic = true`` on nginx's endpoint (or another port) and its state file."""
    kwargs = {} if template is None else {"template": template}
    config = write_config(tmp_path, consul, nginx.server, status=status, **kwargs)
    port = endpoint_port or nginx.endpoint_port
    where = f"unix:{nginx.unix}" if nginx.unix and not endpoint_port else f"127.0.0.1:{port}"
    keys = f'dynamic = true\ndynamic_endpoint = "{where}"\ndynamic_state = "{nginx.state_file}"\n'
    config.write_text(config.read_text().replace("[nginx]\n", f"[nginx]\n{keys}", 1))
    return config


def status_listen() -> tuple[str, str]:
    """A free status address, and its base URL."""
    port = free_port()
    return f"127.0.0.1:{port}", f"http://127.0.0.1:{port}"


def metric(base: str, name: str) -> float:
    """A metric's value from /metrics (labels as written, e.g. 'x_total{reason="unreachable"}'); 0 if absent."""
    _, text = get(f"{base}/metrics")
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def runtime_ports(nginx: LuaNginx, name: str = "primes") -> list[int] | None:
    """The ports of ``name``'s peers in nginx's runtime state, in order; None when it is not held."""
    peers = nginx.state()["upstreams"].get(name)
    return None if peers is None else [p["port"] for p in peers]


def ports_of(nginx: LuaNginx, *backends: str) -> list[int]:
    return [nginx.backends[b] for b in backends]
