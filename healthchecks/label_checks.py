"""``SERVICE_CHECK_*`` labels -> the checks of one container port's service, one small function per kind.

Pure. Bad values are dropped or replaced one at a time, each with a warning naming the container; the
rules shared with service files (timings, initial status) are ``spec.build_timing``'s. See docs/labels.md.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

from plumbing.duration import parse_duration

from .engine import ContainerInfo
from .spec import CheckSpec, Problem, Timing, build_timing

__all__ = ["PortService", "checks_for", "label_warning"]

MAX_SCRIPT = 4096
YES = ("true", "1", "yes")
# What happens to a check label whose value breaks a rule of spec.build_timing.
FALLBACK = {
    "interval": "using the default",
    "timeout": "using the default",
    "initial_status": "ignored",
    "deregister_after": "using 1m",
}


def label_warning(where: str, label: str, value: str, problem: Problem, then: str) -> str:
    """One warning: the container, the label and its value, what it must be, and what is done instead."""
    return f"{where}: {label} {value[:40]!r} {problem.says}; {then}"


@dataclass(frozen=True)
class PortService:
    """One container port being read as a service: what its checks need, and where warnings go."""

    container: ContainerInfo
    sid: str
    name: str
    address: str
    port: int
    keys: Mapping[str, str]
    where: str
    warnings: list[str] = field(compare=False)

    def warn(self, text: str) -> None:
        """Note a warning about this container."""
        self.warnings.append(f"{self.where}: {text}")

    @property
    def host(self) -> str:
        """The address as a URL's host part (IPv6 in brackets)."""
        return f"[{self.address}]" if ":" in self.address else self.address


def checks_for(svc: PortService) -> tuple[CheckSpec, ...]:
    """Every check the labels ask for, in a fixed order (http, tcp, ttl, script, container health)."""
    timing = _timing(svc)
    kinds: tuple[Callable[[PortService, Timing], CheckSpec | None], ...] = (
        _http,
        _tcp,
        _ttl,
        _script,
        _health,
    )
    return tuple(check for kind in kinds if (check := kind(svc, timing)) is not None)


def _duration(svc: PortService, key: str) -> float | None:
    """A duration label's seconds; None when it is absent or (with a warning) not a duration above zero."""
    if key not in svc.keys:
        return None
    try:
        value = parse_duration(svc.keys[key])
    except ValueError:
        svc.warn(f"SERVICE_{key.upper()} {svc.keys[key][:40]!r} is not a duration; using the default")
        return None
    if value <= 0:
        svc.warn(f"SERVICE_{key.upper()} must be above zero; using the default")
        return None
    return value


def _timing(svc: PortService) -> Timing:
    timing, problems = build_timing(
        interval=_duration(svc, "check_interval"),
        timeout=_duration(svc, "check_timeout"),
        initial_status=svc.keys.get("check_initial_status", "").strip().lower() or None,
        deregister_after=_duration(svc, "check_deregister_after"),
    )
    for problem in problems:
        key = f"check_{problem.field}"
        svc.warnings.append(
            label_warning(
                svc.where, f"SERVICE_{key.upper()}", svc.keys[key], problem, FALLBACK[problem.field]
            )
        )
    return timing


def _http(svc: PortService, timing: Timing) -> CheckSpec | None:
    if "check_http" not in svc.keys and "check_https" not in svc.keys:
        return None
    scheme = "https" if "check_https" in svc.keys else "http"
    path = svc.keys.get(f"check_{scheme}", "").strip() or "/"
    if not path.startswith("/") or any(ord(ch) < 33 for ch in path):
        svc.warn(f"SERVICE_CHECK_{scheme.upper()} {path[:40]!r} is not a URL path; no HTTP check")
        return None
    target = f"{scheme}://{svc.host}:{svc.port}{path}"
    return CheckSpec(
        kind="http", check_id=f"{svc.sid}:http", name=f"{svc.name} {scheme}", target=target, **asdict(timing)
    )


def _tcp(svc: PortService, timing: Timing) -> CheckSpec | None:
    if svc.keys.get("check_tcp", "").strip().lower() not in YES:
        return None
    target = f"{svc.host}:{svc.port}"
    return CheckSpec(
        kind="tcp", check_id=f"{svc.sid}:tcp", name=f"{svc.name} tcp", target=target, **asdict(timing)
    )


def _ttl(svc: PortService, timing: Timing) -> CheckSpec | None:
    ttl = _duration(svc, "check_ttl")
    if ttl is None:
        return None
    return CheckSpec(
        kind="ttl",
        check_id=f"{svc.sid}:ttl",
        name=f"{svc.name} ttl",
        ttl=ttl,
        initial_status=timing.initial_status,
        deregister_after=timing.deregister_after,
    )


def _script(svc: PortService, timing: Timing) -> CheckSpec | None:
    script = svc.keys.get("check_script", "").strip()
    argv = _script_argv(svc, script) if script else ()
    if not argv:
        return None
    return CheckSpec(
        kind="script",
        check_id=f"{svc.sid}:script",
        name=f"{svc.name} script",
        argv=argv,
        container_id=svc.container.id,
        **asdict(timing),
    )


def _health(svc: PortService, timing: Timing) -> CheckSpec | None:
    if svc.container.health is None:  # no HEALTHCHECK in the image: nothing to mirror
        return None
    return CheckSpec(
        kind="health",
        check_id=f"{svc.sid}:health",
        name=f"{svc.name} container health",
        container_id=svc.container.id,
        **asdict(timing),
    )


def _script_argv(svc: PortService, script: str) -> tuple[str, ...]:
    """An argv list: split like a shell would but run without one, unless SERVICE_CHECK_SHELL=true."""
    if len(script) > MAX_SCRIPT:
        svc.warn(f"SERVICE_CHECK_SCRIPT is over {MAX_SCRIPT} characters; no script check")
        return ()
    script = script.replace("$SERVICE_IP", svc.address).replace("$SERVICE_PORT", str(svc.port))
    if svc.keys.get("check_shell", "").strip().lower() in YES:
        return ("/bin/sh", "-c", script)
    try:
        return tuple(shlex.split(script))
    except ValueError as exc:
        svc.warn(f"SERVICE_CHECK_SCRIPT cannot be split into arguments ({exc}); no script check")
        return ()
