"""Running a check command in a container without the engine: nsenter (measured, not offered) and runc exec.

For the checkcost scenario: the same checks as the companion's, launched from the benchmark, and what a
command started each way sees of its confinement (user, capabilities, seccomp, cgroup).
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.engines import EngineDaemon

from .cputime import tree_cpu

__all__ = ["cgroup_procs", "confinement", "direct_path", "nsenter_plan", "runc_plan", "runc_root"]

NSENTER = ("nsenter", "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup")
SEEN = re.compile(r"^(Uid|CapEff|CapBnd|Seccomp|NoNewPrivs):.*$", re.M)  # of /proc/self/status


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


def nsenter_plan(pid: int, argv: tuple[str, ...]) -> Plan:
    return _nsenter_argv(pid, argv), _joiner(pid)


def runc_plan(root: str, container_id: str, argv: tuple[str, ...]) -> Plan:
    # runc exec takes the process settings (user, capabilities, seccomp, cgroups) from the container's spec.
    return ["runc", "--root", root, "exec", container_id, *argv], None


def runc_root(engine: EngineDaemon) -> str:
    """Where the engine keeps runc's state: runc's default for Podman, dockerd's exec root for Docker."""
    return "/run/runc" if engine.kind == "podman" else str(engine.workdir / "exec" / "runtime-runc" / "moby")


def direct_path(engine: EngineDaemon, plans: list[Plan], seconds: float, interval: float) -> dict[str, Any]:
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


def confinement(engine: EngineDaemon, name: str, pid: int) -> dict[str, str]:
    """What a command started each way sees of its confinement (user, capabilities, seccomp, cgroup)."""
    container = engine.client.containers.get(name)
    assert container.id is not None  # a container the engine just listed has one
    state = runc_root(engine)
    seen = {"container_cgroup": Path(f"/proc/{pid}/cgroup").read_text().strip().splitlines()[-1]}
    for path in ("engine_api", "nsenter", "runc"):
        texts = []
        for argv in (("cat", "/proc/self/status"), ("cat", "/proc/self/cgroup")):
            if path == "engine_api":
                output = container.exec_run(list(argv)).output
                assert isinstance(output, bytes)  # not streamed: the whole output at once
                texts.append(output.decode())
                continue
            cmd, before = (
                nsenter_plan(pid, argv) if path == "nsenter" else runc_plan(state, container.id, argv)
            )
            texts.append(subprocess.run(cmd, capture_output=True, text=True, preexec_fn=before).stdout)
        seen[path] = "; ".join(m.group(0).replace("\t", " ") for m in SEEN.finditer(texts[0]))
        seen[f"{path}_cgroup"] = (texts[1].strip().splitlines() or [""])[-1]
    return seen
