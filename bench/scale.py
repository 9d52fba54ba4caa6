"""Scenario 2, scale: N services x 4 instances, one template with an upstream per service.

Instances are registered through the catalog endpoint on four external nodes (``bench-1``..``bench-4``,
so the dev agent's anti-entropy leaves them alone), by a pool of threads; registration time is measured
apart from the proxy's time to its first complete configuration. Each instance has one check, flipped
by re-registering it with another status. nginx's front server routes on the ``X-Svc`` header
(``proxy_pass http://s_$http_x_svc``) so one probed service can be watched among thousands; Traefik routes
on its default ``Host(`name`)`` rule.

Per size and system: time to first render (and to routing), flip-to-route (remove and recover), RSS
and CPU at idle and under churn (10 flips/s by default), and the peak number of connections to Consul.
The floor at this size: Consul's wake-up for the probed service, ``nginx -t`` on the rendered file, and
nginx's reload-to-route with the same file edited by hand.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .probe import Prober
from .progress import Steps
from .rig import (
    ConsulAgent,
    CpuMeter,
    NginxServer,
    Poller,
    ProcStats,
    SidecarProcess,
    front_nginx,
    put,
    register_many,
    sidecar_config,
    wait_until,
)
from .traefik import Traefik

__all__ = ["Plan", "run_size"]

NODES = 4
SETTLE = 0.6


@dataclass(frozen=True)
class Plan:
    """How long each measurement of a size runs (the smoke test shrinks it)."""

    flips: int = 5  # flip-to-route rounds per size and system
    idle_seconds: float = 10.0
    churn_rate: float = 10.0  # flips per second under churn
    churn_seconds: float = 10.0

    @property
    def steps(self) -> int:
        """Progress steps per size and system."""
        return 4 + 2 * self.flips


TEMPLATE = """{% import "nginx.j2" as nginx %}
{{ nginx.upstreams(tag="scale", prefix="s_") }}
"""


def name(i: int) -> str:
    return f"svc{i:05d}"


def _body(i: int, node: int, port: int, status: str = "passing", service: bool = True) -> dict[str, Any]:
    sid = f"{name(i)}-{node}"
    body: dict[str, Any] = {
        "Node": f"bench-{node}",
        "Address": "127.0.0.1",
        "Check": {"CheckID": f"c-{sid}", "Name": "bench", "Status": status, "ServiceID": sid},
    }
    if service:
        body["Service"] = {
            "ID": sid,
            "Service": name(i),
            "Tags": ["scale"],
            "Address": "127.0.0.1",
            "Port": port,
        }
    else:
        body["SkipNodeUpdate"] = True
    return body


class Flipper:
    """Flip instances' checks through the catalog; remembers which are down to restore them."""

    def __init__(self, consul: ConsulAgent, ports: list[int]) -> None:
        self.consul = consul
        self.ports = ports
        self.down: set[tuple[int, int]] = set()

    def set(self, i: int, node: int, status: str) -> None:
        put(self.consul, "/v1/catalog/register", _body(i, node, self.ports[node - 1], status, service=False))
        if status == "passing":
            self.down.discard((i, node))
        else:
            self.down.add((i, node))

    def restore_all(self) -> None:
        for i, node in list(self.down):
            self.set(i, node, "passing")


def run_size(
    folder: Path,
    consul: ConsulAgent,
    size: int,
    *,
    systems: tuple[str, ...],
    steps: Steps,
    plan: Plan = Plan(),
) -> dict[str, Any]:
    """Measure one size for each system ("ours", "traefik-1s") and the floor."""
    out: dict[str, Any] = {"size": size, "instances": size * NODES}
    probe = size // 2
    with front_nginx(folder / "nginx", upstream="s_$http_x_svc", initial="") as nginx:
        ports = [nginx.backends[f"b{n}"] for n in range(1, NODES + 1)]
        bodies = [_body(i, n, ports[n - 1]) for i in range(size) for n in range(1, NODES + 1)]
        steps.note(f"{size}: registering {len(bodies)} instances")
        out["registration_s"] = register_many(consul, bodies, "/v1/catalog/register")
        steps.advance()
        flipper = Flipper(consul, ports)
        results: dict[str, Any] = {}
        if "ours" in systems:
            results["ours"] = _ours(folder / "ours", consul, nginx, size, probe, flipper, steps, plan)
        if "traefik-1s" in systems:
            results["traefik-1s"] = _traefik(folder / "traefik", consul, size, probe, flipper, steps, plan)
        out["systems"] = results
        if "ours" in systems:
            out["floor"] = _floor(consul, nginx, probe, flipper, steps, plan)
    return out


def _ours(
    folder: Path,
    consul: ConsulAgent,
    nginx: NginxServer,
    size: int,
    probe: int,
    flipper: Flipper,
    steps: Steps,
    plan: Plan,
) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    dest = nginx.conf_d / "upstreams.conf"
    config = sidecar_config(folder, consul, nginx, TEMPLATE)
    steps.note(f"{size}: upstreams first render")
    t0 = time.monotonic()
    sidecar = SidecarProcess(config)
    try:
        stats = ProcStats(sidecar.proc.pid)
        peak = _PeakSampler(stats, consul.http_port)
        with peak:
            wait_until(
                lambda: dest.exists() and dest.read_text().count("upstream s_") >= size,
                timeout=600,
                interval=0.05,
                what=f"{size} upstreams rendered",
            )
            rendered = time.monotonic() - t0
            with Prober(nginx.port, (name(probe),), max_seconds=600) as prober:
                wait_until(lambda: _all_answer(prober), timeout=60, what="the probed service routing")
                routed = time.monotonic() - t0
                steps.advance()
                result = _measure(
                    "ours",
                    consul,
                    prober,
                    stats,
                    peak,
                    probe,
                    flipper,
                    steps,
                    size,
                    plan,
                    reloads=nginx.reloads,
                )
        result.update(first_render_s=rendered, first_route_s=routed, peak_connections=peak.connections)
        result["peak_rss_mb"] = max(result["peak_rss_mb"], peak.rss)
    finally:
        sidecar.stop(timeout=30)
    return result


def _traefik(
    folder: Path, consul: ConsulAgent, size: int, probe: int, flipper: Flipper, steps: Steps, plan: Plan
) -> dict[str, Any]:
    steps.note(f"{size}: Traefik first route")
    t0 = time.monotonic()
    with Traefik(folder, consul.address, "1s") as traefik:
        assert traefik.proc is not None
        stats = ProcStats(traefik.proc.pid)
        peak = _PeakSampler(stats, consul.http_port)
        with peak, Prober(traefik.port, (name(probe),), max_seconds=600) as prober:
            wait_until(lambda: _all_answer(prober), timeout=300, what="Traefik routing the probed service")
            routed = time.monotonic() - t0
            steps.advance()
            result = _measure("traefik-1s", consul, prober, stats, peak, probe, flipper, steps, size, plan)
        result.update(first_render_s=None, first_route_s=routed, peak_connections=peak.connections)
        result["peak_rss_mb"] = max(result["peak_rss_mb"], peak.rss)
    return result


def _all_answer(prober: Prober) -> bool:
    return {"b1", "b2", "b3", "b4"} <= prober.labels(time.monotonic() - 1.0)


def _measure(
    system: str,
    consul: ConsulAgent,
    prober: Prober,
    stats: ProcStats,
    peak: _PeakSampler,
    probe: int,
    flipper: Flipper,
    steps: Steps,
    size: int,
    plan: Plan,
    reloads: Callable[[], int] | None = None,
) -> dict[str, Any]:
    remove: list[float | None] = []
    recover: list[float | None] = []
    timeout = 20.0 if system == "ours" else 60.0
    for k in range(plan.flips):
        node = k % NODES + 1
        label = f"b{node}"
        t0 = time.monotonic()
        flipper.set(probe, node, "critical")
        remove.append(prober.wait_gone(label, t0, settle=SETTLE, timeout=timeout))
        steps.advance(note=f"{size}: {system} flip {k + 1}/{plan.flips}")
        time.sleep(random.uniform(0.05, 0.3))
        t1 = time.monotonic()
        flipper.set(probe, node, "passing")
        recover.append(prober.wait_back(label, t1, timeout=timeout))
        wait_until(lambda: _all_answer(prober), timeout=timeout, what="all four back")
        steps.advance()
    prober.stop()
    steps.note(f"{size}: {system} idle {plan.idle_seconds:g}s")
    time.sleep(min(2.0, plan.idle_seconds))
    meter = CpuMeter(stats)
    time.sleep(plan.idle_seconds)
    idle_cpu, idle_children = meter.percent()
    idle_rss = stats.rss_mb()
    idle_conns = stats.connections(consul.http_port)
    steps.advance()
    steps.note(f"{size}: {system} churn {plan.churn_rate:g} flips/s")
    before = reloads() if reloads else None
    meter = CpuMeter(stats)
    _churn(flipper, size, probe, plan.churn_rate, plan.churn_seconds)
    churn_cpu, churn_children = meter.percent()
    flipper.restore_all()
    steps.advance()
    return {
        "remove": remove,
        "recover": recover,
        "idle_cpu_pct": idle_cpu,
        "idle_children_cpu_pct": idle_children,
        "idle_rss_mb": idle_rss,
        "idle_connections": idle_conns,
        "churn_cpu_pct": churn_cpu,
        "churn_children_cpu_pct": churn_children,
        "churn_reloads": (reloads() - before) if reloads and before is not None else None,
        "peak_rss_mb": stats.rss_mb(),
    }


def _churn(flipper: Flipper, size: int, probe: int, rate: float, seconds: float) -> None:
    """Flip random instances (never the probed service) at ``rate`` per second for ``seconds``."""
    start = time.monotonic()
    for k in range(int(rate * seconds)):
        target = start + k / rate
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if flipper.down and (k % 2 or len(flipper.down) > 20):
            i, node = random.choice(sorted(flipper.down))
            flipper.set(i, node, "passing")
        else:
            i = random.choice([j for j in random.sample(range(size), min(size, 3)) if j != probe] or [0])
            flipper.set(i, random.randint(1, NODES), "critical")


class _PeakSampler(Poller):
    """Samples connections to Consul and RSS five times a second in a thread; keeps the peaks."""

    def __init__(self, stats: ProcStats, port: int) -> None:
        super().__init__()
        self.stats, self.port = stats, port
        self.connections = 0
        self.rss = 0.0

    def poll(self) -> bool:
        try:
            self.connections = max(self.connections, self.stats.connections(self.port))
            self.rss = max(self.rss, self.stats.rss_mb())
        except OSError:
            return False  # the process has gone
        return True


def _floor(
    consul: ConsulAgent, nginx: NginxServer, probe: int, flipper: Flipper, steps: Steps, plan: Plan
) -> dict[str, Any]:
    """Consul's wake-up for the probed service, ``nginx -t``, and nginx's reload-to-route at this size."""
    steps.note("floor: Consul wake-up, nginx -t, reload")
    wakes = []
    for k in range(plan.flips):
        node = k % NODES + 1
        for status in ("critical", "passing"):
            box: list[float] = []
            waiter = _waiter(consul, name(probe), box)
            time.sleep(0.05)
            t0 = time.monotonic()
            flipper.set(probe, node, status)
            waiter.join(15)
            if box:
                wakes.append(box[0] - t0)
    checks = []
    for _ in range(5):
        t = time.monotonic()
        subprocess.run(nginx.check_command, check=True, capture_output=True, timeout=60)
        checks.append(time.monotonic() - t)
    dest = nginx.conf_d / "upstreams.conf"
    original = dest.read_text()
    block = re.compile(rf"(upstream s_{name(probe)} \{{.*?\}})", re.S)
    remove: list[float | None] = []
    add: list[float | None] = []
    pid = int(nginx.pid_file.read_text())
    with Prober(nginx.port, (name(probe),), max_seconds=300) as prober:
        wait_until(lambda: _all_answer(prober), timeout=30, what="all four answering")
        for k in range(plan.flips):
            port = nginx.backends[f"b{k % NODES + 1}"]
            edited = block.sub(
                lambda m, p=port: m.group(1).replace(f"    server 127.0.0.1:{p};\n", ""), original
            )
            dest.write_text(edited)
            t0 = time.monotonic()
            os.kill(pid, signal.SIGHUP)
            remove.append(prober.wait_gone(f"b{k % NODES + 1}", t0, settle=SETTLE, timeout=20))
            dest.write_text(original)
            t1 = time.monotonic()
            os.kill(pid, signal.SIGHUP)
            add.append(prober.wait_back(f"b{k % NODES + 1}", t1, timeout=20))
            wait_until(lambda: _all_answer(prober), timeout=20, what="all four back")
        steps.advance()
    return {"consul_wake": wakes, "nginx_check": checks, "reload_remove": remove, "reload_add": add}


def _waiter(consul: ConsulAgent, service: str, box: list[float]) -> threading.Thread:
    """A started thread that blocks on ``service`` from its current index and puts its wake time in ``box``."""
    index = _index(consul, service)
    thread = threading.Thread(target=lambda: box.append(_block(consul, service, index)), daemon=True)
    thread.start()
    return thread


def _index(consul: ConsulAgent, service: str) -> int:
    with urllib.request.urlopen(f"{consul.address}/v1/health/service/{service}", timeout=10) as resp:
        resp.read()
        return int(resp.headers.get("X-Consul-Index", "1"))


def _block(consul: ConsulAgent, service: str, index: int) -> float:
    url = f"{consul.address}/v1/health/service/{service}?index={index}&wait=10s"
    with urllib.request.urlopen(url, timeout=15) as resp:
        resp.read()
    return time.monotonic()
