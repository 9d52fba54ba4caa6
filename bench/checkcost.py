"""Scenario 5, the cost of a script check: machine CPU per check run, on Podman and on Docker.

COUNT busybox containers, each with ``SERVICE_CHECK_SCRIPT=test -f /www/index.html`` every INTERVAL, and the
real ``upstreams-registrar run`` running them through the engine's exec API. Over a window of SECONDS the
CPU (utime + stime, from /proc) of the whole engine tree is summed — the API service and everything it
starts: conmon, runc, the check commands / dockerd, containerd, containerd-shim, runc — plus the
companion's, and divided by the checks run (the companion's ``upstreams_check_results`` counter).

The engine is started under ``bench/reaper.py`` (a child subreaper), so its daemonized helpers and every
short-lived process they start stay in one countable tree instead of being re-parented to PID 1.

Then the same checks, same containers, same window, run from the benchmark bypassing the engine: by
``nsenter`` into the container's namespaces (mount, UTS, IPC, net, PID, cgroup) as the container's user,
joined to the container's cgroups before exec (the candidate cheaper path); and by ``runc exec`` on the
engine's own runc state (what the engine runs underneath, so the same confinement). What each path's
command sees of the kernel's confinement (user, capabilities, seccomp, cgroup) is recorded too, since that
decides whether a cheaper path is equivalent.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tests.healthchecks.engines import EngineDaemon, build_image_tar
from tests.support.ports import free_port
from tests.support.processes import stop_process

from .progress import Steps
from .rig import ConsulAgent, wait_until

__all__ = ["cgroup_procs", "run", "tree_cpu"]

SERVICE = "ccheck"
HOST = "bench-host"
CHECK = ("test", "-f", "/www/index.html")
REGISTRAR = str(Path(sys.executable).with_name("upstreams-registrar"))
REAPER = Path(__file__).with_name("reaper.py")
TICK = os.sysconf("SC_CLK_TCK")
NSENTER = ("nsenter", "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup")
SEEN = re.compile(r"^(Uid|CapEff|CapBnd|Seccomp|NoNewPrivs):.*$", re.M)  # of /proc/self/status


def _stat(pid: int) -> tuple[int, int]:
    """(parent pid, utime + stime + cutime + cstime in ticks) of one process."""
    # The command name is in parentheses and may hold spaces: split after the last one.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), sum(int(f) for f in fields[11:15])


def own_cpu(pid: int) -> float:
    """CPU seconds of one process itself (utime + stime), without its reaped children's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and its live descendants, each with its reaped children's."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                parents[int(name)], ticks[int(name)] = _stat(int(name))
            except (OSError, ValueError, IndexError):
                continue  # exited while we looked: its times are now its parent's
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(ticks.get(pid, 0) for pid in tree) / TICK


def cgroup_procs(cgroup_text: str, mountinfo: str) -> tuple[Path, ...]:
    """The ``cgroup.procs`` files to write a pid to so it joins every cgroup a /proc/PID/cgroup lists."""
    mounts: dict[str, str] = {}
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fstype, _, options = [*right.split(), "", "", ""][:3]
        if fstype == "cgroup2":
            mounts[""] = left.split()[4]
        elif fstype == "cgroup":
            for option in options.split(","):
                if option not in ("rw", "ro", "relatime") and not option.startswith("clone"):
                    mounts[option] = left.split()[4]
    found = []
    for line in cgroup_text.splitlines():
        _, controllers, path = line.split(":", 2)
        mount = mounts.get(controllers.split(",")[0])
        if mount is not None:
            found.append(Path(mount) / path.lstrip("/") / "cgroup.procs")
    return tuple(found)


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
    for kind in engines:
        result[kind] = _one_engine(kind, folder, consul, count, seconds, interval, env, steps)
    return result


def _one_engine(
    kind: str,
    folder: Path,
    consul: ConsulAgent,
    count: int,
    seconds: float,
    interval: float,
    env: Mapping[str, str],
    steps: Steps,
) -> dict[str, Any]:
    """Every path on one engine, on the same ``count`` containers."""
    root = folder / kind
    root.mkdir(parents=True, exist_ok=True)
    engine = EngineDaemon(kind, root, build_image_tar(root))
    _under_reaper(engine, root / "shim")
    steps.note(f"starting {kind}")
    engine.start()
    try:
        engine.load_image()
        names = [f"cc{i:02d}" for i in range(count)]
        labels = {
            "SERVICE_NAME": SERVICE,
            "SERVICE_CHECK_SCRIPT": " ".join(CHECK),
            "SERVICE_CHECK_INTERVAL": f"{interval:g}s",
        }
        found = [engine.run(name, labels=labels, ports={"8080/tcp": None}) for name in names]
        for container in found:
            container.reload()
        pids = [int(c.attrs["State"]["Pid"]) for c in found]
        runc_root = _runc_root(engine)
        data: dict[str, Any] = {}
        steps.advance(note=f"{kind}: engine exec API")
        data["engine_api"] = _companion_path(folder / f"{kind}-api", engine, consul, count, seconds, env, "")
        steps.advance(note=f"{kind}: companion with runc")
        runc_config = f'[checks]\nexec = "runc"\nrunc_root = "{runc_root}"\n'
        data["companion_runc"] = _companion_path(
            folder / f"{kind}-runc", engine, consul, count, seconds, env, runc_config
        )
        steps.advance(note=f"{kind}: nsenter")
        data["nsenter"] = _direct_path(engine, [_nsenter_plan(pid, CHECK) for pid in pids], seconds, interval)
        steps.advance(note=f"{kind}: runc exec")
        data["runc"] = _direct_path(
            engine, [_runc_plan(runc_root, c.id, CHECK) for c in found], seconds, interval
        )
        data["seen"] = _confinement(engine, names[0], pids[0])
        return data
    finally:
        engine.stop()


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


def _companion_path(
    folder: Path,
    engine: EngineDaemon,
    consul: ConsulAgent,
    count: int,
    seconds: float,
    env: Mapping[str, str],
    extra: str,
) -> dict[str, Any]:
    """The companion runs the checks (through the engine's exec API, or as ``extra`` config says)."""
    folder.mkdir(parents=True, exist_ok=True)
    status = free_port()
    config = folder / "registrar.toml"
    config.write_text(
        f'[consul]\naddress = "{consul.address}"\n\n[registrar]\nhostname = "{HOST}"\n'
        f'advertise_address = "127.0.0.1"\nresync = "60s"\nengine = "{engine.url}"\n'
        f'[status]\nlisten = "127.0.0.1:{status}"\n{extra}'
    )
    own_env = {k: v for k, v in env.items() if not k.startswith(("CONSUL_", "DOCKER_"))}
    with (folder / "registrar.log").open("ab") as log:
        proc = subprocess.Popen(
            [REGISTRAR, "run", "--config", str(config)], stdout=log, stderr=log, env=own_env
        )
    try:
        assert engine.proc is not None
        metrics = f"http://127.0.0.1:{status}/metrics"
        wait_until(lambda: _checks_run(metrics) >= 2 * count, timeout=60, interval=0.1)  # warmed up
        before = (tree_cpu(engine.proc.pid), tree_cpu(proc.pid), own_cpu(proc.pid), _checks_run(metrics))
        t0 = time.monotonic()
        time.sleep(seconds)
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


def _checks_run(metrics_url: str) -> int:
    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return 0
    return int(
        sum(float(m) for m in re.findall(r"^upstreams_check_results_total\{[^}]*\} (\S+)$", text, re.M))
    )


def _nsenter_argv(pid: int, argv: tuple[str, ...]) -> list[str]:
    """nsenter into the container's namespaces as its init's user (first uid / gid in its status)."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    uid, gid = status["Uid"].split()[0], status["Gid"].split()[0]
    return [*NSENTER, f"--target={pid}", f"--setuid={uid}", f"--setgid={gid}", "--", *argv]


def _joiner(pid: int) -> Any:
    """A preexec function that moves the child into every cgroup of container process ``pid``."""
    files = cgroup_procs(Path(f"/proc/{pid}/cgroup").read_text(), Path("/proc/self/mountinfo").read_text())

    def join() -> None:
        me = str(os.getpid()).encode()
        for path in files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, me)
            finally:
                os.close(fd)

    return join


Plan = tuple[list[str], Callable[[], None] | None]  # argv, and what the child does before exec


def _nsenter_plan(pid: int, argv: tuple[str, ...]) -> Plan:
    return _nsenter_argv(pid, argv), _joiner(pid)


def _runc_plan(root: str, container_id: str, argv: tuple[str, ...]) -> Plan:
    # runc exec takes the process settings (user, capabilities, seccomp, cgroups) from the container's spec.
    return ["runc", "--root", root, "exec", container_id, *argv], None


def _runc_root(engine: EngineDaemon) -> str:
    """Where the engine keeps runc's state: runc's default for Podman, dockerd's exec root for Docker."""
    return "/run/runc" if engine.kind == "podman" else str(engine.workdir / "exec" / "runtime-runc" / "moby")


def _direct_path(engine: EngineDaemon, plans: list[Plan], seconds: float, interval: float) -> dict[str, Any]:
    """The same checks run from this process on the same schedule, bypassing the engine; CPU over one window."""
    assert engine.proc is not None
    engine0, launcher0, t0 = tree_cpu(engine.proc.pid), time.process_time(), time.monotonic()
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    runs = failed = 0
    while time.monotonic() - t0 < seconds:
        tick = time.monotonic()
        for argv, before in plans:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=10,
                preexec_fn=before,
                start_new_session=True,
            )
            runs += 1
            failed += done.returncode != 0
        time.sleep(max(0.0, interval - (time.monotonic() - tick)))
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    engine1, launcher1, t1 = tree_cpu(engine.proc.pid), time.process_time(), time.monotonic()
    return {
        "checks": runs,
        "failed": failed,
        "window_s": t1 - t0,
        "engine_cpu_s": engine1 - engine0,  # the engine idling meanwhile: counted on every path
        "command_cpu_s": (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime),
        "launcher_cpu_s": launcher1 - launcher0,
    }


def _confinement(engine: EngineDaemon, name: str, pid: int) -> dict[str, str]:
    """What a command started each way sees of its confinement (user, capabilities, seccomp, cgroup)."""
    container = engine.client.containers.get(name)
    runc_root = _runc_root(engine)
    seen = {"container_cgroup": Path(f"/proc/{pid}/cgroup").read_text().strip().splitlines()[-1]}
    for path in ("engine_api", "nsenter", "runc"):
        texts = []
        for argv in (("cat", "/proc/self/status"), ("cat", "/proc/self/cgroup")):
            if path == "engine_api":
                texts.append(container.exec_run(list(argv)).output.decode())
                continue
            cmd, before = (
                _nsenter_plan(pid, argv) if path == "nsenter" else _runc_plan(runc_root, container.id, argv)
            )
            texts.append(subprocess.run(cmd, capture_output=True, text=True, preexec_fn=before).stdout)
        seen[path] = "; ".join(m.group(0).replace("\t", " ") for m in SEEN.finditer(texts[0]))
        seen[f"{path}_cgroup"] = (texts[1].strip().splitlines() or [""])[-1]
    return seen
