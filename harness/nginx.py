"""A real nginx under a prefix of its own: a front server on a loopback port proxying to a rendered
upstream, and static backends (also nginx servers) that answer with their own name. Tests and benchmarks
start it synchronously; the demo starts the same server, without backends, as an asynchronous ``Child``."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path

from renderer.dynamic.snippet import LOAD_MODULES

from .ports import accepts, distinct_free_ports, wait_port
from .process import Child, PartFailed, stop_process

__all__ = ["LUA_MODULES", "NginxServer", "nginx_binary", "start_server"]

START_TIMEOUT = 10.0
# Debian's libnginx-mod-http-lua and its ndk dependency, for nginx.conf's main context.
LUA_MODULES = LOAD_MODULES


def nginx_binary(env: Mapping[str, str]) -> str | None:
    """``NGINX_BIN`` (another nginx, a Nix dev shell's say, as CONSUL_BIN is for Consul), else nginx on
    the PATH or in /usr/sbin."""
    found = env.get("NGINX_BIN") or shutil.which("nginx", path=env.get("PATH"))
    return found or shutil.which("nginx", path="/usr/sbin:/sbin")


class NginxServer:
    """nginx with its files under ``workdir``; ``port`` is the front server's (a free one if None)."""

    def __init__(
        self,
        workdir: Path,
        backends: int = 4,
        upstream: str = "primes",
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        lua: bool = False,
        snippet: str = "",
        workers: int = 1,
    ) -> None:
        self.dir = workdir
        # lua: load Debian's ndk and Lua modules in the main context; snippet: text included in http {}
        # (renderer.dynamic.snippet's, for [nginx] dynamic = true); workers: worker_processes.
        self.lua = lua or bool(snippet)
        self.snippet = snippet
        self.worker_count = workers
        # Tests and benchmarks pass no env: theirs is the process's (NGINX_BIN); the demo passes its own.
        self.env = dict(os.environ if env is None else env)
        self.binary = nginx_binary(self.env) or "/usr/sbin/nginx"
        # Chosen together: free_port() twice may give the same port, and two backends would share it.
        chosen, *ports = distinct_free_ports(backends + 1)
        self.port = port or chosen
        self.backends = {f"b{i}": backend for i, backend in enumerate(ports, start=1)}
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
    def stdout_log(self) -> Path:
        return self.dir / "logs" / "stdout.log"

    @property
    def upstreams(self) -> Path:
        """The file in conf.d a sidecar renders the upstream into."""
        return self.conf_d / "upstreams.conf"

    @property
    def check_command(self) -> list[str]:
        return [self.binary, "-t", "-q", "-p", str(self.dir), "-c", str(self.conf)]

    def command(self) -> list[str]:
        """Write the config and return the command line running nginx in the foreground."""
        self.write_config()
        return [self.binary, "-p", str(self.dir), "-c", str(self.conf)]

    def write_config(self) -> None:
        backends = "\n".join(
            f'    server {{ listen 127.0.0.1:{port}; access_log off; return 200 "{name}\\n"; }}'
            for name, port in self.backends.items()
        )
        modules = "".join(f"{line}\n" for line in LUA_MODULES) if self.lua else ""
        if self.lua and os.geteuid() == 0:
            # Workers run as nobody when started by root, and the Lua side reads the state file, which
            # a test or benchmark writes under its own private temporary folder.
            modules += "user root;\n"
        included = ""
        if self.snippet:
            (self.dir / "dynamic.conf").write_text(self.snippet)
            included = f"    include {self.dir}/dynamic.conf;\n"
        self.conf.write_text(
            f"""{modules}daemon off;
master_process on;
worker_processes {self.worker_count};
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
{included}{backends}
    include {self.conf_d}/*.conf;
    server {{
        listen 127.0.0.1:{self.port};
        location / {{ proxy_pass http://{self.upstream}; proxy_connect_timeout 1s; }}
    }}
}}
"""
        )

    def start(self) -> None:
        """Start nginx and block until the front server accepts connections."""
        with self.stdout_log.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, env=self.env)
        deadline = time.monotonic() + START_TIMEOUT
        while not _listens(self.port):
            # An nginx refusing its config exits at once: say why instead of waiting for the port.
            if self.proc.poll() is not None:
                lines = self.stdout_log.read_text(errors="replace").strip().splitlines()
                raise PartFailed(f"nginx exited at start-up: {lines[-1] if lines else 'no output'}")
            if time.monotonic() > deadline:
                self.stop()  # or it outlives the test that could not start it
                wait_port(self.port, timeout=0)  # raises, naming the port
            time.sleep(0.02)
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


def _listens(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def start_server(server: NginxServer, stack: AsyncExitStack) -> Child:
    """Start ``server`` as an asynchronous child (stopped when ``stack`` closes) and wait until it listens;
    raise PartFailed naming nginx and the port if it cannot."""
    child = Child("nginx", server.command(), server.stdout_log, server.env)
    stack.push_async_callback(child.stop)
    await child.start()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not child.running:
            if "Address already in use" in child.last_line():
                raise PartFailed(f"nginx cannot listen on 127.0.0.1:{server.port}: the port is in use.")
            raise child.failure("exited at start-up")
        if server.pid_file.exists() and await accepts(server.port):
            return child
        await asyncio.sleep(0.05)
    raise PartFailed(f"nginx did not listen on 127.0.0.1:{server.port} within {START_TIMEOUT:g}s.")
