"""The project's two daemons as the demo runs them: real subprocesses with configs written for the demo."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from harness.nginx import NginxServer
from harness.process import Child
from harness.sidecar import console_script

__all__ = ["HOSTNAME", "start_companion", "start_sidecar"]

HOSTNAME = "upstreams-demo"  # the companion's owner marker: it deregisters only what carries it
TEMPLATE = """\
{% import "nginx.j2" as nginx %}
{# Passing instances of "prime" only; with none, an upstream that answers 502 at once. #}
{{ nginx.upstream("primes", service("prime")) }}
"""


async def start_sidecar(
    workdir: Path, consul: str, nginx: NginxServer, status_port: int, env: Mapping[str, str]
) -> Child:
    """``upstreams watch`` rendering the primes upstream into nginx's conf.d on every change; its status
    endpoint on ``status_port`` (a free one: the default 9119 may be another sidecar's)."""
    (workdir / "primes.conf.j2").write_text(TEMPLATE)
    config = workdir / "sidecar.toml"
    config.write_text(
        f"""[consul]
address = {json.dumps(consul)}

[wait]
min = "0s"

[status]
listen = "127.0.0.1:{status_port}"

[nginx]
pid_file = {json.dumps(str(nginx.pid_file))}
check_command = {json.dumps(list(nginx.check_command))}

[[template]]
source = "primes.conf.j2"
destination = {json.dumps(str(nginx.upstreams))}
"""
    )
    argv = [*console_script("upstreams", "renderer.cli"), "watch", "--config", str(config)]
    return await Child("the sidecar (upstreams watch)", argv, workdir / "sidecar.log", env).start()


async def start_companion(
    workdir: Path, consul: str, engine: str | None, services_dir: Path, env: Mapping[str, str]
) -> Child:
    """``upstreams-registrar run`` for the demo's engine (or only its services folder)."""
    source = f"engine = {json.dumps(engine)}" if engine else "containers = false"
    config = workdir / "registrar.toml"
    config.write_text(
        f"""[consul]
address = {json.dumps(consul)}

[registrar]
hostname = "{HOSTNAME}"
advertise_address = "127.0.0.1"
{source}
services_dir = {json.dumps(str(services_dir))}
resync = "5s"

[status]
listen = ""  # the default port may be taken by a real companion on this host
"""
    )
    argv = [*console_script("upstreams-registrar", "healthchecks.cli"), "run", "--config", str(config)]
    return await Child(
        "the companion (upstreams-registrar run)", argv, workdir / "registrar.log", env
    ).start()
