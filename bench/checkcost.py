"""Scenario 5, the cost of a script check: machine CPU per check run, on Podman and on Docker.

COUNT busybox containers, each with ``SERVICE_CHECK_SCRIPT=test -f /www/index.html`` every INTERVAL, and the
real ``upstreams-registrar run`` running them through the engine's exec API. Over a window of SECONDS the
CPU (utime + stime, from /proc) of the whole engine tree is summed — the API service and everything it
starts: conmon, runc, the check commands / dockerd, containerd, containerd-shim, runc — plus the
companion's, and divided by the checks run (the companion's ``upstreams_check_results`` counter).

The engine is started under ``bench/reaper.py`` (a child subreaper), so its daemonized helpers and every
short-lived process they start stay in one countable tree instead of being re-parented to PID 1.

Then the same checks, same containers, same window: the companion with ``[checks] exec = "runc"`` (runc
is then the companion's child, counted with it); and from the benchmark bypassing the engine (direct.py),
by ``nsenter`` into the container's namespaces as the container's user, joined to its cgroups (the
candidate cheapest path), and by ``runc exec`` on the engine's own runc state. What each path's command
sees of its confinement (user, capabilities, seccomp, cgroup) is recorded too, since that decides whether a
cheaper path is equivalent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.engines import EngineDaemon
from harness.image import build_image_tar
from harness.ports import free_port
from harness.process import stop_process

from .cputime import own_cpu, tree_cpu
from .direct import confinement, direct_path, nsenter_plan, runc_plan, runc_root
from .progress import Steps
from .rig import ConsulAgent, wait_until

__all__ = ["run"]

SERVICE = "ccheck"
HOST = "bench-host"
CHECK = ("test", "-f", "/www/index.html")
REGISTRAR = str(Path(sys.executable).with_name("upstreams-registrar"))
REAPER = Path(__file__).with_name("reaper.py")


@dataclass(frozen=True)
class _Run:
    """What every path of every engine shares: where, against which Consul, how many, how long."""

    folder: Path
    consul: ConsulAgent
    count: int
    seconds: float
    interval: float
    env: Mapping[str, str]
    steps: Steps


def run(
    folder: Path,
    consul: ConsulAgent,
    *,
    count: int,
    seconds: float,
    steps: Steps,
    env: Mapping[str, str],
    engines: tuple[str, ...] = ("podman", "docker"),
    interval: float = 2.0,
) -> dict[str, Any]:
    """Both paths on each engine in ``engines``; CPU seconds, checks run and the confinement seen."""
    result: dict[str, Any] = {
        "containers": count,
        "interval": interval,
        "seconds": seconds,
        "machine": _machine(),
    }
    at = _Run(folder, consul, count, seconds, interval, env, steps)
    for kind in engines:
        result[kind] = _one_engine(kind, at)
    return result


def _one_engine(kind: str, at: _Run) -> dict[str, Any]:
    """Every path on one engine, on the same ``count`` containers."""
    root = at.folder / kind
    root.mkdir(parents=True, exist_ok=True)
    engine = EngineDaemon(kind, root, build_image_tar(root))
    _under_reaper(engine, root / "shim")
    at.steps.note(f"starting {kind}")
    engine.start()
    try:
        engine.load_image()
        return _paths(kind, at, engine)
    finally:
        engine.stop()


def _paths(kind: str, at: _Run, engine: EngineDaemon) -> dict[str, Any]:
    """``count`` labelled containers on a started engine, then each path's window over them."""
    names = [f"cc{i:02d}" for i in range(at.count)]
    labels = {
        "SERVICE_NAME": SERVICE,
        "SERVICE_CHECK_SCRIPT": " ".join(CHECK),
        "SERVICE_CHECK_INTERVAL": f"{at.interval:g}s",
    }
    found = [engine.run(name, labels=labels, ports={"8080/tcp": None}) for name in names]
    for container in found:
        container.reload()
    pids = [int(c.attrs["State"]["Pid"]) for c in found]
    state = runc_root(engine)
    data: dict[str, Any] = {}
    at.steps.advance(note=f"{kind}: engine exec API")
    data["engine_api"] = _companion_path(at.folder / f"{kind}-api", engine, at, "")
    at.steps.advance(note=f"{kind}: companion with runc")
    runc_config = f'[checks]\nexec = "runc"\nrunc_root = "{state}"\n'
    data["companion_runc"] = _companion_path(at.folder / f"{kind}-runc", engine, at, runc_config)
    at.steps.advance(note=f"{kind}: nsenter")
    nsenter = [nsenter_plan(pid, CHECK) for pid in pids]
    data["nsenter"] = direct_path(engine, nsenter, at.seconds, at.interval)
    at.steps.advance(note=f"{kind}: runc exec")
    runc = [runc_plan(state, c.id, CHECK) for c in found]
    data["runc"] = direct_path(engine, runc, at.seconds, at.interval)
    data["seen"] = confinement(engine, names[0], pids[0])
    return data


def _machine() -> dict[str, str]:
    """The CPU, kernel and engine versions of this run (the page's machine table may be another run's)."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        "unknown",
    )

    def version(argv: list[str]) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (
            (done.stdout or done.stderr).strip().splitlines()[0]
            if (done.stdout or done.stderr).strip()
            else "?"
        )

    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "kernel": os.uname().release,
        "Podman": version(["podman", "--version"]),
        "Docker": version(["dockerd", "--version"]),
    }


def _under_reaper(engine: EngineDaemon, shim: Path) -> None:
    """Put a ``podman`` / ``dockerd`` first on the engine's PATH that runs the real one under the reaper."""
    real = shutil.which("podman" if engine.kind == "podman" else "dockerd")
    if real is None:
        raise RuntimeError(f"{engine.kind} is not installed")
    shim.mkdir(parents=True, exist_ok=True)
    script = shim / Path(real).name
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REAPER}" "{real}" "$@"\n')
    script.chmod(0o755)
    engine.env["PATH"] = f"{shim}:{engine.env.get('PATH', os.defpath)}"


def _companion_path(folder: Path, engine: EngineDaemon, at: _Run, extra: str) -> dict[str, Any]:
    """The companion runs the checks (through the engine's exec API, or as ``extra`` config says)."""
    folder.mkdir(parents=True, exist_ok=True)
    status = free_port()
    config = _registrar_config(folder, at.consul, engine, status, extra)
    own_env = {k: v for k, v in at.env.items() if not k.startswith(("CONSUL_", "DOCKER_"))}
    with (folder / "registrar.log").open("ab") as log:
        proc = subprocess.Popen(
            [REGISTRAR, "run", "--config", str(config)], stdout=log, stderr=log, env=own_env
        )
    try:
        assert engine.proc is not None
        metrics = f"http://127.0.0.1:{status}/metrics"
        wait_until(lambda: _checks_run(metrics) >= 2 * at.count, timeout=60, interval=0.1)  # warmed up
        before = (tree_cpu(engine.proc.pid), tree_cpu(proc.pid), own_cpu(proc.pid), _checks_run(metrics))
        t0 = time.monotonic()
        time.sleep(at.seconds)
        after = (tree_cpu(engine.proc.pid), tree_cpu(proc.pid), own_cpu(proc.pid), _checks_run(metrics))
        t1 = time.monotonic()
    finally:
        stop_process(proc, timeout=20)
    engine_s, tree_s, own_s, checks = (b - a for a, b in zip(before, after, strict=True))
    return {
        "checks": int(checks),
        "window_s": t1 - t0,
        "engine_cpu_s": engine_s,
        "companion_cpu_s": own_s,
        "command_cpu_s": tree_s - own_s,  # what it started: runc on the runc path, nothing on the API's
    }


def _registrar_config(
    folder: Path, consul: ConsulAgent, engine: EngineDaemon, status: int, extra: str
) -> Path:
    config = folder / "registrar.toml"
    config.write_text(
        f'[consul]\naddress = "{consul.address}"\n\n[registrar]\nhostname = "{HOST}"\n'
        f'advertise_address = "127.0.0.1"\nresync = "60s"\nengine = "{engine.url}"\n'
        f'[status]\nlisten = "127.0.0.1:{status}"\n{extra}'
    )
    return config


def _checks_run(metrics_url: str) -> int:
    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return 0
    return int(
        sum(float(m) for m in re.findall(r"^upstreams_check_results_total\{[^}]*\} (\S+)$", text, re.M))
    )
