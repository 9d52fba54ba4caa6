"""A real nginx under the test's own prefix: a front server on a free port proxying to a rendered
upstream, and static backends (also nginx servers) that answer with their own name."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from .ports import distinct_free_ports, wait_port
from .processes import stop_process

# NGINX_BIN lets the suite run against another nginx (a Nix dev shell, say), as CONSUL_BIN does for Consul.
NGINX = os.environ.get("NGINX_BIN") or shutil.which("nginx") or "/usr/sbin/nginx"


class NginxServer:
    def __init__(self, workdir: Path, backends: int = 4, upstream: str = "primes") -> None:
        self.dir = workdir
        # Chosen together: free_port() twice may give the same port, and two backends would share it.
        self.port, *ports = distinct_free_ports(backends + 1)
        self.backends = {f"b{i}": port for i, port in enumerate(ports, start=1)}
        self.upstream = upstream
        self.conf_d = workdir / "conf.d"
        self.conf_d.mkdir(parents=True, exist_ok=True)
        (workdir / "logs").mkdir(exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.dir / "nginx.conf"

    @property
    def pid_file(self) -> Path:
        return self.dir / "nginx.pid"

    @property
    def error_log(self) -> Path:
        return self.dir / "logs" / "error.log"

    @property
    def check_command(self) -> list[str]:
        return [NGINX, "-t", "-q", "-p", str(self.dir), "-c", str(self.conf)]

    def write_config(self) -> None:
        backends = "\n".join(
            f'    server {{ listen 127.0.0.1:{port}; access_log off; return 200 "{name}\\n"; }}'
            for name, port in self.backends.items()
        )
        self.conf.write_text(
            f"""daemon off;
master_process on;
worker_processes 1;
pid {self.pid_file};
error_log {self.error_log} notice;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/tmp_body;
    proxy_temp_path {self.dir}/tmp_proxy;
    fastcgi_temp_path {self.dir}/tmp_fastcgi;
    uwsgi_temp_path {self.dir}/tmp_uwsgi;
    scgi_temp_path {self.dir}/tmp_scgi;
    proxy_next_upstream error timeout http_502;
{backends}
    include {self.conf_d}/*.conf;
    server {{
        listen 127.0.0.1:{self.port};
        location / {{ proxy_pass http://{self.upstream}; proxy_connect_timeout 1s; }}
    }}
}}
"""
        )

    def start(self) -> None:
        self.write_config()
        log = (self.dir / "logs" / "stdout.log").open("ab")
        with log:
            self.proc = subprocess.Popen(
                [NGINX, "-p", str(self.dir), "-c", str(self.conf)], stdout=log, stderr=log
            )
        wait_port(self.port)
        deadline = time.monotonic() + 5
        while not self.pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGQUIT)
        self.proc = None

    def reloads(self) -> int:
        """How many times the master was told to reload (it logs each SIGHUP)."""
        if not self.error_log.exists():
            return 0
        return self.error_log.read_text(errors="replace").count("(SIGHUP) received")

    def get(self, path: str = "/") -> tuple[int, str]:
        """One request through the front server."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return resp.status, resp.read().decode().strip()
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    def workers(self) -> int:
        """How many worker processes the master has right now (two while a reload hands over)."""
        if self.proc is None:
            return 0
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return 0
        return len(children)

    def wait_settled(self, timeout: float = 5.0) -> None:
        """Wait until an ongoing reload has finished: after SIGHUP the old worker keeps accepting
        connections with the old config for about 100 ms, so a sample taken then mixes both."""
        deadline = time.monotonic() + timeout
        while self.workers() > 1 and time.monotonic() < deadline:
            time.sleep(0.01)

    def answers(self, requests: int = 12) -> set[str]:
        """Which backends answered a few requests (round robin), or {'502'} style codes for errors.

        Sampled once any reload in progress has finished, so the answer is the live config's.
        """
        self.wait_settled()
        seen = set()
        for _ in range(requests):
            status, body = self.get()
            seen.add(body if status == 200 else str(status))
        return seen
