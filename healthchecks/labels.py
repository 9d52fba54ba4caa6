"""Container labels and environment -> service specs, following registrator's conventions.

Pure: a ``ContainerInfo`` and the host's settings in, specs and warnings out. Keys are read from the
environment (``SERVICE_NAME=web``) and from labels (labels win); a port-specific key
(``SERVICE_8080_NAME``) wins over the general one. Invalid values are dropped one key at a time, each
with a warning naming the container; only an unusable name or ID drops a whole service.
See docs/labels.md.
"""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from discovery.duration import parse_duration

from .engine import ContainerInfo, PortBinding
from .ports import all_ports, no_port_reason, ports_to_register
from .spec import (
    MAX_META,
    MAX_META_KEY,
    MAX_META_VALUE,
    STATUSES,
    CheckSpec,
    ServiceSpec,
    valid_meta_key,
    valid_service_name,
)
from .virtualhost import virtual_meta

__all__ = ["HostSettings", "services_for"]

# Keys with a meaning of their own; any other SERVICE_* key becomes Meta.
KNOWN = frozenset({"name", "id", "tags", "ignore", "weight", "ports"})
CHECK_PREFIX = "check_"
MAX_TAG = 255
MAX_SCRIPT = 4096
MIN_DEREGISTER_AFTER = 60.0


@dataclass(frozen=True, kw_only=True)
class HostSettings:
    """What the label reader needs to know about this host."""

    hostname: str
    advertise_address: str = "127.0.0.1"
    internal: bool = False
    explicit: bool = False


def _service_keys(container: ContainerInfo) -> dict[str, str]:
    """SERVICE_* keys from env, then labels (labels win), lower-cased without the prefix."""
    keys: dict[str, str] = {}
    for source in (container.env, container.labels):
        for key, value in source:
            if key.upper().startswith("SERVICE_") and len(key) > len("SERVICE_"):
                keys[key[len("SERVICE_") :].lower()] = value
    return keys


def _for_port(keys: dict[str, str], port: int) -> dict[str, str]:
    """The general keys, overridden by ``<port>_key`` ones; other ports' keys are dropped."""
    general = {k: v for k, v in keys.items() if not k.split("_", 1)[0].isdigit()}
    prefix = f"{port}_"
    specific = {k[len(prefix) :]: v for k, v in keys.items() if k.startswith(prefix) and len(k) > len(prefix)}
    return general | specific


def _image_basename(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def services_for(
    container: ContainerInfo, host: HostSettings
) -> tuple[tuple[ServiceSpec, ...], tuple[str, ...]]:
    """Return the services a running container asks for, and a warning for each value skipped."""
    keys = _service_keys(container)
    warnings: list[str] = []
    where = f"container {container.name or container.short_id}"
    if "ignore" in keys and keys["ignore"].strip().lower() not in ("", "false", "0", "no"):
        return (), ()
    if host.explicit and "name" not in keys:
        return (), ()
    ports = ports_to_register(container, host, all_ports(container, keys, where, warnings))
    if not ports and keys:
        # It asked for a service (some SERVICE_* key) and would otherwise vanish without a word.
        warnings.append(
            f"{where} asks for a service but has no port to register: {no_port_reason(container, host)}"
        )
    specs = []
    for binding, address, port in ports:
        own = _for_port(keys, binding.port)
        if own.get("ignore", "").strip().lower() not in ("", "false", "0", "no"):
            continue
        if host.explicit and "name" not in own:
            continue
        spec = _service(container, host, binding, address, port, own, len(ports) > 1, where, warnings)
        if spec is not None:
            specs.append(spec)
    return tuple(_unique_ids(specs, where, warnings)), tuple(warnings)


def _service(
    container: ContainerInfo,
    host: HostSettings,
    binding: PortBinding,
    address: str,
    port: int,
    keys: dict[str, str],
    several: bool,
    where: str,
    warnings: list[str],
) -> ServiceSpec | None:
    suffix = ":udp" if binding.protocol == "udp" else ""
    base = keys.get("name", _image_basename(container.image))
    specific = _service_keys(container).get(f"{binding.port}_name")
    name = specific if specific is not None else (f"{base}-{binding.port}" if several else base)
    name = name.strip()
    if not valid_service_name(name):
        warnings.append(
            f"{where}: service name {name[:80]!r} (port {binding.port}) is not letters, digits, '_', '.', '-' "
            "of at most 63 characters; the port is not registered"
        )
        return None
    sid = keys.get("id", f"{host.hostname}:{container.name}:{binding.port}{suffix}").strip()
    if not sid or len(sid) > 256 or any(ord(ch) < 32 or ch == "/" for ch in sid):
        warnings.append(
            f"{where}: service ID {sid[:80]!r} is empty, too long or has '/' or control characters"
        )
        return None
    return ServiceSpec(
        id=sid,
        name=name,
        address=address,
        port=port,
        tags=_tags(keys.get("tags", ""), where, warnings),
        # nginx-proxy's VIRTUAL_* become nginx-host/nginx-path (virtualhost.py); they win over SERVICE_* meta.
        meta=tuple(
            sorted(
                {
                    **dict(_meta(keys, where, warnings)),
                    **dict(virtual_meta(container, binding.port, several, where, warnings)),
                }.items()
            )
        ),
        weight=_weight(keys.get("weight"), where, warnings),
        checks=_checks(container, sid, name, address, port, keys, where, warnings),
        origin=where,
    )


def _unique_ids(specs: list[ServiceSpec], where: str, warnings: list[str]) -> list[ServiceSpec]:
    """SERVICE_ID given for a container with several ports: suffix the port so IDs stay unique.

    Check IDs start with the service ID and are unique per agent too, so they follow it.
    """
    seen = Counter(spec.id for spec in specs)
    out = []
    for spec in specs:
        if seen[spec.id] > 1:
            new_id = f"{spec.id}:{spec.port}"
            warnings.append(f"{where}: service ID {spec.id!r} is used by several ports; using {new_id!r}")
            checks = tuple(
                replace(check, check_id=new_id + check.check_id.removeprefix(spec.id))
                for check in spec.checks
            )
            spec = replace(spec, id=new_id, checks=checks)
        out.append(spec)
    return out


def _tags(text: str, where: str, warnings: list[str]) -> tuple[str, ...]:
    tags: list[str] = []
    for raw in text.split(","):
        tag = raw.strip()
        if not tag:
            continue
        if len(tag) > MAX_TAG or any(ord(ch) < 32 for ch in tag):
            warnings.append(
                f"{where}: tag {tag[:40]!r}... is over {MAX_TAG} characters or has control characters; skipped"
            )
            continue
        if tag not in tags:
            tags.append(tag)
    return tuple(tags)


def _weight(text: str | None, where: str, warnings: list[str]) -> int | None:
    if text is None:
        return None
    try:
        weight = int(text.strip())
    except ValueError:
        weight = 0
    if not 1 <= weight <= 65535:
        warnings.append(
            f"{where}: SERVICE_WEIGHT {text[:40]!r} is not a whole number from 1 to 65535; ignored"
        )
        return None
    return weight


def _meta(keys: dict[str, str], where: str, warnings: list[str]) -> tuple[tuple[str, str], ...]:
    meta: dict[str, str] = {}
    for key, value in sorted(keys.items()):
        if key in KNOWN or key.startswith(CHECK_PREFIX):
            continue
        if not valid_meta_key(key):
            warnings.append(
                f"{where}: Meta key {key[:MAX_META_KEY]!r} is not [A-Za-z0-9_-] of at most {MAX_META_KEY} "
                "characters, starts with 'consul-' or is reserved; skipped"
            )
            continue
        if len(value) > MAX_META_VALUE:
            warnings.append(f"{where}: Meta value of {key!r} is over {MAX_META_VALUE} characters; skipped")
            continue
        if len(meta) >= MAX_META - 2:  # two pairs are ours
            warnings.append(f"{where}: more than {MAX_META - 2} Meta keys; {key!r} and later ones skipped")
            break
        meta[key] = value
    return tuple(sorted(meta.items()))


def _duration(
    keys: dict[str, str], key: str, default: float | None, where: str, warnings: list[str]
) -> float | None:
    if key not in keys:
        return default
    try:
        value = parse_duration(keys[key])
    except ValueError:
        warnings.append(
            f"{where}: SERVICE_{key.upper()} {keys[key][:40]!r} is not a duration; using the default"
        )
        return default
    if value <= 0:
        warnings.append(f"{where}: SERVICE_{key.upper()} must be above zero; using the default")
        return default
    return value


def _checks(
    container: ContainerInfo,
    sid: str,
    name: str,
    address: str,
    port: int,
    keys: dict[str, str],
    where: str,
    warnings: list[str],
) -> tuple[CheckSpec, ...]:
    interval = _duration(keys, "check_interval", 10.0, where, warnings) or 10.0
    timeout = _duration(keys, "check_timeout", min(5.0, interval), where, warnings) or 5.0
    deregister_after = _duration(keys, "check_deregister_after", None, where, warnings)
    if deregister_after is not None and deregister_after < MIN_DEREGISTER_AFTER:
        warnings.append(f"{where}: SERVICE_CHECK_DEREGISTER_AFTER is below Consul's minimum of 1m; using 1m")
        deregister_after = MIN_DEREGISTER_AFTER
    initial = keys.get("check_initial_status", "").strip().lower() or None
    if initial is not None and initial not in STATUSES:
        warnings.append(
            f"{where}: SERVICE_CHECK_INITIAL_STATUS {initial[:40]!r} is not one of {', '.join(STATUSES)}"
        )
        initial = None
    common: dict[str, Any] = {
        "interval": interval,
        "timeout": timeout,
        "initial_status": initial,
        "deregister_after": deregister_after,
    }
    host = f"[{address}]" if ":" in address else address
    checks: list[CheckSpec] = []
    if "check_http" in keys or "check_https" in keys:
        scheme = "https" if "check_https" in keys else "http"
        path = keys.get(f"check_{scheme}", "").strip() or "/"
        if not path.startswith("/") or any(ord(ch) < 33 for ch in path):
            warnings.append(
                f"{where}: SERVICE_CHECK_{scheme.upper()} {path[:40]!r} is not a URL path; no HTTP check"
            )
        else:
            target = f"{scheme}://{host}:{port}{path}"
            checks.append(
                CheckSpec(
                    kind="http", check_id=f"{sid}:http", name=f"{name} {scheme}", target=target, **common
                )
            )
    if keys.get("check_tcp", "").strip().lower() in ("true", "1", "yes"):
        checks.append(
            CheckSpec(
                kind="tcp", check_id=f"{sid}:tcp", name=f"{name} tcp", target=f"{host}:{port}", **common
            )
        )
    if "check_ttl" in keys:
        ttl = _duration(keys, "check_ttl", None, where, warnings)
        if ttl is not None:
            checks.append(
                CheckSpec(
                    kind="ttl",
                    check_id=f"{sid}:ttl",
                    name=f"{name} ttl",
                    ttl=ttl,
                    initial_status=initial,
                    deregister_after=deregister_after,
                )
            )
    script = keys.get("check_script", "").strip()
    if script:
        argv = _script_argv(script, keys, address, port, where, warnings)
        if argv:
            checks.append(
                CheckSpec(
                    kind="script",
                    check_id=f"{sid}:script",
                    name=f"{name} script",
                    argv=argv,
                    container_id=container.id,
                    **common,
                )
            )
    if container.health is not None:
        checks.append(
            CheckSpec(
                kind="health",
                check_id=f"{sid}:health",
                name=f"{name} container health",
                container_id=container.id,
                **common,
            )
        )
    return tuple(checks)


def _script_argv(
    script: str, keys: dict[str, str], address: str, port: int, where: str, warnings: list[str]
) -> tuple[str, ...]:
    """An argv list: split like a shell would but run without one, unless SERVICE_CHECK_SHELL=true."""
    if len(script) > MAX_SCRIPT:
        warnings.append(f"{where}: SERVICE_CHECK_SCRIPT is over {MAX_SCRIPT} characters; no script check")
        return ()
    script = script.replace("$SERVICE_IP", address).replace("$SERVICE_PORT", str(port))
    if keys.get("check_shell", "").strip().lower() in ("true", "1", "yes"):
        return ("/bin/sh", "-c", script)
    try:
        argv = tuple(shlex.split(script))
    except ValueError as exc:
        warnings.append(
            f"{where}: SERVICE_CHECK_SCRIPT cannot be split into arguments ({exc}); no script check"
        )
        return ()
    return argv
