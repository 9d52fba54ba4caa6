"""The checkcost section of docs/benchmarks.md (scenario 5), from its results."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["section"]

ENGINES = (("podman", "Podman"), ("docker", "Docker"))


def _cost(path: dict[str, Any], own: str) -> tuple[float, float, float]:
    """(machine CPU ms per check, % of one core, the companion's / launcher's share in %)."""
    own_s = path.get(own, 0.0)
    total = path["engine_cpu_s"] + own_s + path.get("command_cpu_s", 0.0)
    checks = max(path["checks"], 1)
    return 1000 * total / checks, 100 * total / path["window_s"], 100 * own_s / total if total else 0.0


def _field(seen: str, name: str) -> str:
    found = re.search(rf"{name}: ([^;]*)", seen)
    return found.group(1).strip() if found else "-"


def _rows(data: dict[str, Any]) -> tuple[list[str], list[str], list[float]]:
    cost, seen, ratios = [], [], []
    for kind, label in ENGINES:
        if kind not in data:
            continue
        api, ns = data[kind]["engine_api"], data[kind]["nsenter"]
        a_ms, a_core, a_own = _cost(api, "companion_cpu_s")
        n_ms, n_core, n_own = _cost(ns, "launcher_cpu_s")
        ratios.append(a_ms / n_ms if n_ms else 0.0)
        cost += [
            f"| {label} | engine exec API (the companion today) | {api['checks']} | {a_ms:.1f} | {a_core:.1f}% "
            f"| companion {a_own:.0f}% | {10_000 / a_ms:,.0f} |",
            f"| {label} | nsenter + setuid + cgroup join (candidate) | {ns['checks']} | {n_ms:.1f} | {n_core:.1f}% "
            f"| launcher {n_own:.0f}% | {10_000 / n_ms:,.0f} |",
        ]
        s = data[kind]["seen"]
        for path, key in (("engine exec API", "engine_api"), ("nsenter", "nsenter")):
            same = "yes" if s[f"{key}_cgroup"] == s["container_cgroup"] else "**no**"
            seen.append(
                f"| {label} | {path} | {_field(s[key], 'Uid').split()[0]} | `{_field(s[key], 'CapBnd')}` "
                f"| {_field(s[key], 'Seccomp')} | {same} |"
            )
    return cost, seen, ratios


def section(data: dict[str, Any]) -> list[str]:
    """Scenario 5 as markdown lines."""
    load = data.get("load", ["?", "?"])
    cost, seen, ratios = _rows(data)
    low, high = (min(ratios), max(ratios)) if ratios else (0.0, 0.0)
    return [
        "## 5. The cost of a script check",
        "",
        f"_Run {data.get('when', '?')}; load average before / after: {load[0]} / {load[1]}; "
        f"took {data.get('took_s', 0):.0f} s. The machine was shared with other engineers' work at the time "
        "(2 cores): absolute figures carry that noise, the two paths were measured in the same run._",
        "",
        f"{data['containers']} busybox containers with `SERVICE_CHECK_SCRIPT=test -f /www/index.html` every "
        f"{data['interval']:g} s, a {data['seconds']:g} s window per path and engine. *Machine CPU* is utime + stime "
        "from /proc of the engine's whole process tree (Podman: the API service, conmon, runc, the check "
        "commands; Docker: dockerd, containerd, containerd-shim, runc, the commands; started under "
        "`bench/reaper.py`, a child subreaper, so daemonized helpers and short-lived processes are counted) plus "
        "the companion's (or, on the nsenter path, the benchmark process launching nsenter and nsenter's own "
        "tree), divided by the checks run. The engine idling is in both paths' figures.",
        "",
        "| engine | path | checks | machine CPU per check (ms) | share of one core | own share | "
        "containers per core at a 10 s interval |",
        "|---|---|---|---|---|---|---|",
        *cost,
        "",
        f"The nsenter path is {low:.1f}x to {high:.1f}x cheaper. What the command sees of its confinement "
        "(`/proc/self/status` and `/proc/self/cgroup` read by a check run each way, same container):",
        "",
        "| engine | path | uid | capability bounding set | seccomp mode | in the container's cgroup |",
        "|---|---|---|---|---|---|",
        *seen,
        "",
        "**Not implemented: the cheaper path does not keep the same isolation.** nsenter does enter the "
        "container's mount, UTS, IPC, network, PID and cgroup namespaces, the pid joins the container's "
        "cgroups and it runs as the container's uid; but the command "
        "then runs with the host's full capability set (`000001fffeffffff`, including CAP_SYS_ADMIN and "
        "CAP_SYS_MODULE) instead of the container's 14 (`00000000a80425fb`), and without the container's "
        "seccomp filter (mode 0 instead of 2). The command is a binary from the container's filesystem, which "
        "the container's own processes can replace: run that way it could load kernel modules (CAP_SYS_MODULE), "
        "set the host's clock or reboot it (CAP_SYS_TIME, CAP_SYS_BOOT) and make system calls the container's "
        "filter refuses. That is a container escape. Closing that gap means reproducing what runc does on exec: drop to the container's bounding, "
        "effective, inheritable and ambient sets, set no_new_privs, load the container's seccomp program "
        "(readable only with ptrace's PTRACE_SECCOMP_GET_FILTER), apply its AppArmor/SELinux label and user "
        "namespace mappings, and guard against the container rewriting the host binary through "
        "`/proc/PID/exe` while it is in the container's PID namespace (CVE-2019-5736). util-linux cannot do "
        "this (setpriv would have to exist inside the container's filesystem, and has no seccomp), so it would be "
        "a setuid-root helper of our own: not a change to make for CPU. The engine's exec API stays the only "
        "way the companion runs a check in a container.",
        "",
        "What would cut the cost without weakening isolation: a longer interval (registrator's default, 10 s, "
        "gives the last column), an HTTP or TCP check where the service has a port (Consul's agent runs those, "
        "at no exec cost), or the container's own HEALTHCHECK (`health` checks read the engine's status, no exec).",
        "",
    ]
