"""Scenario 2's floor at one size: Consul's wake-up for the probed service, ``nginx -t`` on the
rendered file, and nginx's reload-to-route with the same file edited by hand."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from typing import Any

from .probe import Prober
from .rig import ConsulAgent, NginxServer, wait_until
from .scale_catalog import NODES, SETTLE, Size, all_answer, name

__all__ = ["floor"]


def floor(at: Size, nginx: NginxServer) -> dict[str, Any]:
    """Consul's wake-up for the probed service, ``nginx -t``, and nginx's reload-to-route at this size."""
    at.steps.note("floor: Consul wake-up, nginx -t, reload")
    wakes = _wakes(at)
    checks = _checks(nginx)
    remove, add = _reloads(at, nginx)
    at.steps.advance()
    return {"consul_wake": wakes, "nginx_check": checks, "reload_remove": remove, "reload_add": add}


def _wakes(at: Size) -> list[float]:
    """Flip to the wake of a blocking query on the probed service, each way, ``plan.flips`` times."""
    wakes = []
    for k in range(at.plan.flips):
        node = k % NODES + 1
        for status in ("critical", "passing"):
            box: list[float] = []
            waiter = _waiter(at.consul, name(at.probe), box)
            time.sleep(0.05)
            t0 = time.monotonic()
            at.flipper.set(at.probe, node, status)
            waiter.join(15)
            if box:  # no wake within the join's 15 s: that sample is left out
                wakes.append(box[0] - t0)
    return wakes


def _checks(nginx: NginxServer) -> list[float]:
    checks = []
    for _ in range(5):
        t = time.monotonic()
        subprocess.run(nginx.check_command, check=True, capture_output=True, timeout=60)
        checks.append(time.monotonic() - t)
    return checks


def _reloads(at: Size, nginx: NginxServer) -> tuple[list[float | None], list[float | None]]:
    """SIGHUP to route, with one server of the probed upstream edited out of the file, then back in."""
    dest = nginx.conf_d / "upstreams.conf"
    original = dest.read_text()
    remove: list[float | None] = []
    add: list[float | None] = []
    pid = int(nginx.pid_file.read_text())
    with Prober(nginx.port, (name(at.probe),), max_seconds=300) as prober:
        wait_until(lambda: all_answer(prober), timeout=30, what="all four answering")
        for k in range(at.plan.flips):
            label = f"b{k % NODES + 1}"
            dest.write_text(_without(original, at.probe, nginx.backends[label]))
            t0 = time.monotonic()
            os.kill(pid, signal.SIGHUP)
            remove.append(prober.wait_gone(label, t0, settle=SETTLE, timeout=20))
            dest.write_text(original)
            t1 = time.monotonic()
            os.kill(pid, signal.SIGHUP)
            add.append(prober.wait_back(label, t1, timeout=20))
            wait_until(lambda: all_answer(prober), timeout=20, what="all four back")
    return remove, add


def _without(conf: str, probe: int, port: int) -> str:
    """``conf`` with the server on ``port`` removed from the probed service's upstream block."""
    block = re.compile(rf"(upstream s_{name(probe)} \{{.*?\}})", re.S)

    def drop(m: re.Match[str]) -> str:
        return m.group(1).replace(f"    server 127.0.0.1:{port};\n", "")

    return block.sub(drop, conf)


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
