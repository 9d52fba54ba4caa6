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


PATHS = (
    ("engine_api", "engine exec API (the companion today)", "companion_cpu_s", "companion"),
    ("nsenter", "nsenter + setuid + cgroup join", "launcher_cpu_s", "launcher"),
    ("runc", "runc exec on the engine's state", "launcher_cpu_s", "launcher"),
)


def _rows(data: dict[str, Any]) -> tuple[list[str], list[str], dict[str, list[float]]]:
    cost, seen = [], []
    ratios: dict[str, list[float]] = {"nsenter": [], "runc": []}
    for kind, label in ENGINES:
        if kind not in data:
            continue
        per_check: dict[str, float] = {}
        for key, name, own, who in PATHS:
            if key not in data[kind]:
                continue
            path = data[kind][key]
            per_check[key], core, share = _cost(path, own)
            cost.append(
                f"| {label} | {name} | {path['checks']} | {per_check[key]:.1f} | {core:.1f}% "
                f"| {who} {share:.0f}% | {10_000 / per_check[key]:,.0f} |"
            )
            s = data[kind]["seen"]
            if key in s:
                same = "yes" if s[f"{key}_cgroup"] == s["container_cgroup"] else "**no**"
                seen.append(
                    f"| {label} | {name} | {_field(s[key], 'Uid').split()[0]} | `{_field(s[key], 'CapBnd')}` "
                    f"| `{_field(s[key], 'CapEff')}` | {_field(s[key], 'Seccomp')} | {same} |"
                )
        for key in ratios:
            if per_check.get(key):
                ratios[key].append(per_check["engine_api"] / per_check[key])
    return cost, seen, ratios


def _span(values: list[float]) -> str:
    return f"{min(values):.1f}x to {max(values):.1f}x" if values else "-"


def section(data: dict[str, Any]) -> list[str]:
    """Scenario 5 as markdown lines."""
    load = data.get("load", ["?", "?"])
    cost, seen, ratios = _rows(data)
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
        f"Engine exec API / nsenter: {_span(ratios['nsenter'])} (the nsenter path is that much cheaper); "
        f"engine exec API / runc exec: {_span(ratios['runc'])}. What the command sees of its confinement "
        "(`/proc/self/status` and `/proc/self/cgroup` read by a command run each way, same container):",
        "",
        "| engine | path | uid | capability bounding set | effective capabilities | seccomp mode "
        "| in the container's cgroup |",
        "|---|---|---|---|---|---|---|",
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
        "a privileged helper of our own: not a change to make for CPU.",
        "",
        "The path that does keep the isolation, `runc exec` on the engine's own runc state (runc takes the user, "
        "capabilities, seccomp program and cgroups from the container's spec, as the engine's exec does), is "
        "hardly cheaper: runc itself (a Go binary started twice per exec: `runc exec` and `runc init`) is most "
        "of the cost of a check on both engines, the engine's API, conmon or the shim add the rest. It would also "
        "tie the companion to each engine's runc state folder and skip the engine's own bookkeeping. So the "
        "engine's exec API stays the only way the companion runs a check in a container.",
        "",
        "What would cut the cost without weakening isolation: a longer interval (registrator's default, 10 s, "
        "gives the last column), an HTTP or TCP check where the service has a port (Consul's agent runs those, "
        "at no exec cost), or the container's own HEALTHCHECK (`health` checks read the engine's status, no exec).",
        "",
    ]
