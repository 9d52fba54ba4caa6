"""The project's own daemons as real processes: the installed console scripts, and ``upstreams watch``
run against a test's or a benchmark's Consul and nginx."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from .consul import ConsulAgent
from .nginx import NginxServer

__all__ = ["TEMPLATE", "UPSTREAMS", "SidecarProcess", "console_script", "write_config"]

UPSTREAMS = str(Path(sys.executable).with_name("upstreams"))

TEMPLATE = """{% import "nginx.j2" as nginx %}
{{ nginx.upstream("primes", service("prime", passing=false), backup_warning=true) }}
"""


def console_script(name: str, module: str) -> list[str]:
    """The installed console script next to this Python, else the same entry point through ``-c``."""
    script = Path(sys.executable).with_name(name)
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]


def write_config(
    workdir: Path,
    consul: ConsulAgent,
    nginx: NginxServer,
    template: str = TEMPLATE,
    wait: tuple[str, str] = ("0s", "0s"),
    extra: str = "",
    status: str = "",
) -> Path:
    """A sidecar config rendering ``template`` into nginx's conf.d, checked and reloaded for real."""
    (workdir / "upstreams.conf.j2").write_text(template)
    check = ", ".join(f'"{a}"' for a in nginx.check_command)
    config = workdir / "sidecar.toml"
    config.write_text(
        f"""[consul]
address = "{consul.address}"

[wait]
min = "{wait[0]}"
max = "{wait[1]}"

[status]
listen = "{status}"

[nginx]
pid_file = "{nginx.pid_file}"
check_command = [{check}]

[[template]]
source = "upstreams.conf.j2"
destination = "{nginx.conf_d / "upstreams.conf"}"
backup = true
{extra}"""
    )
    return config


class SidecarProcess:
    """``upstreams watch`` as a child process, its log in a file."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log = config.with_suffix(".log")
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_")}
        environ.update(env or {})
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [UPSTREAMS, *args, "watch", "--config", str(config)], stdout=out, stderr=out, env=environ
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode
