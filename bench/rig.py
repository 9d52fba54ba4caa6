"""The real parts a benchmark runs against, from the harness the tests use too, and how to measure them.

Consul, nginx and the sidecar come from ``harness/``; this module adds what only the benchmarks
need: a Consul client for many concurrent calls, process metrics read from /proc (RSS, CPU time,
connections), and a working folder that is cleaned up whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from harness.consul import ConsulAgent
from harness.nginx import NginxServer
from harness.sidecar import SidecarProcess, write_config
from harness.sockets import connections_to
from harness.waiting import wait_until

__all__ = [
    "EMPTY_UPSTREAM",
    "ConsulAgent",
    "CpuMeter",
    "NginxServer",
    "PeakSampler",
    "Poller",
    "ProcStats",
    "SidecarProcess",
    "front_nginx",
    "put",
    "register_many",
    "sidecar_config",
    "wait_until",
    "workdir",
]

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
EMPTY_UPSTREAM = "upstream primes { server 127.0.0.1:1 down; }\n"
POLL_LIMIT = 1800.0  # a poller thread ends after this many seconds, whatever its owner does


class Poller:
    """A daemon thread calling ``poll()`` every ``interval`` seconds while the ``with`` block runs.

    ``poll`` returns False to end the thread early.
    """

    interval = 0.2

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        deadline = time.monotonic() + POLL_LIMIT
        while not self._stop.wait(self.interval) and time.monotonic() < deadline:
            if not self.poll():
                return

    def poll(self) -> bool:
        """One round; False ends the thread."""
        raise NotImplementedError


@contextlib.contextmanager
def workdir(keep: bool = False) -> Iterator[Path]:
    """A short folder under /tmp for one run (unix socket paths are limited to 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="ub-", dir="/tmp"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def front_nginx(
    folder: Path, upstream: str = "primes", initial: str = EMPTY_UPSTREAM
) -> Iterator[NginxServer]:
    """nginx with four named backends and a front server proxying to ``upstream`` (may hold variables)."""
    server = NginxServer(folder, upstream=upstream)
    (server.conf_d / "upstreams.conf").write_text(initial)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def sidecar_config(
    folder: Path, consul: ConsulAgent, nginx: NginxServer, template: str, wait: tuple[str, str] = ("0s", "0s")
) -> Path:
    """``write_config``'s config, with the template in a folder of its own.

    The sidecar watches its templates' folder for edits, and ``SidecarProcess`` logs next to the config:
    with both in one folder (as in the test suite), every log line looks like a template edit and
    triggers a full re-render. Production logs go to the journal, so the benchmark keeps them apart.
    """
    templates = folder / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    config = write_config(templates, consul, nginx, template=template, wait=wait)
    moved = folder / "sidecar.toml"
    moved.write_text(
        config.read_text().replace('source = "upstreams.conf.j2"', 'source = "templates/upstreams.conf.j2"')
    )
    config.unlink()
    return moved


def put(consul: ConsulAgent, path: str, body: Any = None) -> None:
    """One PUT to Consul, as fast as urllib goes (ConsulAgent.api with a shorter path for hot loops)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(consul.address + path, data=data, method="PUT")
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


def register_many(consul: ConsulAgent, bodies: list[dict[str, Any]], path: str, threads: int = 16) -> float:
    """PUT every body to ``path`` with a pool of threads; the seconds it took."""
    start = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(lambda b: put(consul, path, b), bodies):
            pass
    return time.monotonic() - start


@dataclass
class ProcStats:
    """CPU time and memory of one process (and of the children it has reaped), read from /proc."""

    pid: int

    def cpu(self) -> tuple[float, float]:
        """(own, reaped children) CPU seconds so far."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        return (utime + stime) / TICK, (cutime + cstime) / TICK

    def rss_mb(self) -> float:
        with open(f"/proc/{self.pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE / 2**20

    def connections(self, port: int) -> int:
        return connections_to(self.pid, port)


class CpuMeter:
    """CPU use of a process over a window, as a percentage of one core."""

    def __init__(self, stats: ProcStats) -> None:
        self.stats = stats
        self.t0 = time.monotonic()
        self.own0, self.children0 = stats.cpu()

    def percent(self) -> tuple[float, float]:
        """(own, reaped children) CPU since the meter started, in % of one core."""
        own, children = self.stats.cpu()
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        return 100 * (own - self.own0) / elapsed, 100 * (children - self.children0) / elapsed


class PeakSampler(Poller):
    """Samples RSS five times a second and connections to Consul once a second in a thread; keeps the peaks.

    Connections less often because counting them costs the machine: the kernel walks every TCP socket,
    and the probers' connection per request leaves tens of thousands in TIME_WAIT (about 20 ms a
    sample at 60,000, taken from the cores the measured sidecar runs on).
    """

    CONNECTIONS_EVERY = 5  # polls

    def __init__(self, stats: ProcStats, port: int) -> None:
        super().__init__()
        self.stats, self.port = stats, port
        self.connections = 0
        self.rss = 0.0
        self._polls = 0

    def poll(self) -> bool:
        try:
            if self._polls % self.CONNECTIONS_EVERY == 0:
                self.connections = max(self.connections, self.stats.connections(self.port))
            self._polls += 1
            self.rss = max(self.rss, self.stats.rss_mb())
        except OSError:
            return False  # the process has gone
        return True
