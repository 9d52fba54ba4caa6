"""Where the sidecar's time and memory go at scale (a developer's tool, not a scenario of ``python -m bench``).

``serve N DIR`` starts a Consul dev agent with N services x 4 instances (scenario 2's catalog) and keeps it
running, its HTTP port in DIR/port. Against that agent:

* ``watcher DIR``: an in-process Watcher wanting every service; seconds to the first complete snapshot,
  the health signal's answer, a flip's latency to the refetch, and this process's RSS;
* ``sidecar DIR N [SPY|debug [start|flips]]``: ``upstreams watch`` with one upstream per service;
  seconds from start to the complete file, its peak RSS and connections, and flip -> file latencies;
* ``dynamic DIR N ...``: the same with ``[nginx] dynamic = true``, against nginx with the Lua module.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from discovery.client import ConsulClient
from discovery.model import CatalogQuery, ServiceQuery
from discovery.settings import ConsulSettings
from discovery.watch import Watcher

from .dynamic_rig import LuaNginx, dynamic_config, lua_nginx
from .rig import (
    ConsulAgent,
    NginxServer,
    ProcStats,
    SidecarProcess,
    front_nginx,
    put,
    register_many,
    sidecar_config,
    wait_until,
)
from .scale_catalog import NODES, Flipper, body, name

SPY = str(Path(sys.executable).with_name("py-spy"))  # the bench extra installs it beside python
TEMPLATE = """{% import "nginx.j2" as nginx %}
{{ nginx.upstreams(tag="scale", prefix="s_") }}
"""


def serve(size: int, folder: Path) -> None:
    """Start Consul, register the catalog, write the port, and run until killed."""
    folder.mkdir(parents=True, exist_ok=True)
    consul = ConsulAgent(folder)
    consul.start()
    try:
        bodies = [body(i, n, 20000 + n) for i in range(size) for n in range(1, NODES + 1)]
        took = register_many(consul, bodies, "/v1/catalog/register")
        print(f"registered {len(bodies)} instances in {took:.1f} s", flush=True)
        (folder / "port").write_text(str(consul.http_port))
        while True:
            time.sleep(3600)
    finally:
        consul.stop()


def agent(folder: Path) -> ConsulAgent:
    consul = ConsulAgent(folder / "client")
    consul.http_port = int((folder / "port").read_text())
    return consul


def reset(consul: ConsulAgent, size: int) -> None:
    """The probed service's four checks passing again, whatever an earlier run left."""
    flipper = Flipper(consul, [20000 + n for n in range(1, NODES + 1)])
    for node in range(1, NODES + 1):
        flipper.set(size // 2, node, "passing")


def _extra(consul: ConsulAgent, i: int, verb: str, port: int = 20001) -> None:
    """Register a fifth, passing instance of service ``i`` on node bench-1, or deregister it."""
    if verb == "register":
        entry = body(i, 1, port)
        entry["Service"]["ID"] = entry["Check"]["ServiceID"] = "extra"
        entry["Check"]["CheckID"] = "c-extra"
        put(consul, "/v1/catalog/register", entry)
    else:
        put(consul, "/v1/catalog/deregister", {"Node": "bench-1", "ServiceID": "extra"})


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


async def _until(watcher: Watcher, version: int, done: Any) -> int:
    """Wait for a snapshot ``done`` likes; return its version."""
    while True:
        version, snap = await watcher.updates.wait_newer(version)
        if done(snap):
            return version


async def watcher_run(folder: Path, size: int) -> None:
    """The Watcher alone: first complete snapshot, flips, passing (de)registrations, RSS."""
    consul = agent(folder)
    reset(consul, size)
    client = ConsulClient(ConsulSettings(host="127.0.0.1", port=consul.http_port))
    watcher = Watcher(client, wait="1m", min_interval=0.01)
    t0 = time.monotonic()
    watcher.want([CatalogQuery(), *(ServiceQuery(name(i)) for i in range(size))])
    task = asyncio.create_task(watcher.run())
    version = await _until(watcher, 0, lambda s: len(s.services) == size)
    print(f"first complete snapshot: {time.monotonic() - t0:.2f} s, rss {rss_mb():.0f} MB", flush=True)
    probe, i = ServiceQuery(name(size // 2)), size // 2
    flipper, lat = Flipper(consul, [20000 + n for n in range(1, NODES + 1)]), []
    for k in range(6):
        status = "critical" if k % 2 == 0 else "passing"
        t1 = time.monotonic()
        await asyncio.to_thread(flipper.set, i, 1, status)
        version = await _until(watcher, version, lambda s, st=status: _status(s, probe) == st)
        lat.append(time.monotonic() - t1)
    print(f"flip -> snapshot (ms): {[round(x * 1000) for x in lat]}", flush=True)
    for verb in ("register", "deregister"):
        t1 = time.monotonic()
        await asyncio.to_thread(_extra, consul, i, verb)
        wanted = verb == "register"
        version = await _until(watcher, version, lambda s, w=wanted: _has_extra(s, probe) == w)
        print(f"passing instance {verb} -> snapshot: {(time.monotonic() - t1) * 1000:.0f} ms", flush=True)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rss now {rss_mb():.0f} MB, max {maxrss:.0f} MB")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.close()


def _status(snap: Any, probe: ServiceQuery) -> str:
    return next((i.status for i in snap.get(probe) if i.node == "bench-1" and i.id != "extra"), "")


def _has_extra(snap: Any, probe: ServiceQuery) -> bool:
    return any(i.id == "extra" for i in snap.get(probe))


class _Peaks:
    """The sidecar's peak RSS and connections, sampled by the waits below."""

    def __init__(self, stats: ProcStats, port: int) -> None:
        self.stats, self.port, self.rss, self.connections = stats, port, 0.0, 0

    def sample(self, connections: bool = True) -> None:
        self.rss = max(self.rss, self.stats.rss_mb())
        if connections:
            self.connections = max(self.connections, self.stats.connections(self.port))


def _spy(spy: str, pid: int) -> subprocess.Popen[bytes] | None:
    if spy in ("", "debug"):
        return None
    command = [SPY, "record", "-r", "250", "--nonblocking", "-f", "raw", "--idle", "-o", spy, "-p", str(pid)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_spy(spying: subprocess.Popen[bytes] | None) -> None:
    if spying:
        spying.send_signal(signal.SIGINT)
        spying.wait()


@contextlib.contextmanager
def _nginx(folder: Path, dynamic: bool) -> Iterator[tuple[NginxServer, LuaNginx | None]]:
    if not dynamic:
        with front_nginx(folder, upstream="s_$http_x_svc", initial="") as nginx:
            yield nginx, None
        return
    with lua_nginx(folder, upstream="s_$http_x_svc") as lua:
        yield lua.server, lua


def sidecar_run(
    folder: Path, size: int, spy: str = "", when: str = "start", dynamic: bool = False
) -> dict[str, Any]:
    """``upstreams watch`` from start to the complete file, then flips; RSS and connections.

    ``spy``: a file for py-spy's raw samples, or "debug" for the sidecar's debug log; ``when``: "start"
    samples the first render, "flips" the flips after it; ``dynamic``: ``[nginx] dynamic = true``
    against nginx with the Lua module.
    """
    consul = agent(folder)
    reset(consul, size)
    work = folder / f"sidecar-{time.time():.0f}"
    out: dict[str, Any] = {}
    with _nginx(work / "nginx", dynamic) as (nginx, lua):
        dest = nginx.conf_d / "upstreams.conf"
        config = (
            dynamic_config(work, consul, lua, TEMPLATE)
            if lua
            else sidecar_config(work, consul, nginx, TEMPLATE)
        )
        t0 = time.monotonic()
        sidecar = SidecarProcess(config, *(["--debug"] if spy == "debug" else []))
        peaks = _Peaks(ProcStats(sidecar.proc.pid), consul.http_port)
        spying = _spy(spy, sidecar.proc.pid) if when == "start" else None

        def complete() -> bool:
            peaks.sample()
            return dest.exists() and dest.read_text().count("upstream s_") >= size

        try:
            wait_until(complete, timeout=600, interval=0.05, what="every upstream")
            out["first_render_s"] = round(time.monotonic() - t0, 2)
            out["rss_after_first_render_mb"] = round(peaks.stats.rss_mb(), 1)
            print(out, flush=True)
            spying = _stop_spy(spying) if when == "start" else _spy(spy, sidecar.proc.pid)
            out.update(_file_flips(consul, nginx.backends, dest, size, peaks, 6 if when == "start" else 30))
            _stop_spy(spying)
        finally:
            sidecar.stop(timeout=30)
    return out


def _file_flips(
    consul: ConsulAgent, backends: dict[str, int], dest: Path, size: int, peaks: _Peaks, count: int = 6
) -> dict[str, Any]:
    flipper = Flipper(consul, [backends[f"b{n}"] for n in range(1, NODES + 1)])
    lat = []
    for k in range(count):
        before = dest.stat().st_mtime_ns
        t1 = time.monotonic()
        flipper.set(size // 2, k // 2 % NODES + 1, "passing" if k % 2 else "critical")

        def moved(before: int = before) -> bool:
            peaks.sample(connections=False)  # RSS only: a flip's latency is measured in milliseconds
            return dest.stat().st_mtime_ns != before

        wait_until(moved, timeout=60, interval=0.005, what="the flip written")
        lat.append(time.monotonic() - t1)
        time.sleep(0.3)
    regs = []
    for verb in ("register", "deregister"):
        before = dest.stat().st_mtime_ns
        t1 = time.monotonic()
        _extra(consul, size // 2, verb, backends["b1"])
        wait_until(
            lambda b=before: peaks.sample(connections=False) or dest.stat().st_mtime_ns != b, timeout=60
        )
        regs.append(round((time.monotonic() - t1) * 1000))
    return {
        "passing_register_deregister_to_file_ms": regs,
        "flip_to_file_ms": [round(x * 1000) for x in lat],
        "flip_to_file_median_ms": round(statistics.median(lat) * 1000),
        "peak_rss_mb": round(peaks.rss, 1),
        "peak_connections": peaks.connections,
        "idle_rss_mb": round(peaks.stats.rss_mb(), 1),
    }


def main(argv: list[str]) -> None:
    command, rest = argv[0], argv[1:]
    if command == "serve":
        serve(int(rest[0]), Path(rest[1]))
    elif command == "watcher":
        asyncio.run(watcher_run(Path(rest[0]), int(rest[1])))
    elif command in ("sidecar", "dynamic"):
        spy, when = rest[2] if len(rest) > 2 else "", rest[3] if len(rest) > 3 else "start"
        print(sidecar_run(Path(rest[0]), int(rest[1]), spy, when, dynamic=command == "dynamic"))


if __name__ == "__main__":
    main(sys.argv[1:])
