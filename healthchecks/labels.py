"""Container labels and environment -> service specs, following registrator's conventions.

Pure: a ``ContainerInfo`` and the host's settings in, specs and warnings out. Keys are read from the
environment (``SERVICE_NAME=web``) and from labels (labels win); a port-specific key
(``SERVICE_8080_NAME``) wins over the general one. Invalid values are dropped one key at a time, each
with a warning naming the container; only an unusable name or ID drops a whole service.
See docs/labels.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .engine import ContainerInfo, PortBinding
from .label_checks import PortService, checks_for, label_warning
from .ports import all_ports, no_port_reason, ports_to_register
from .spec import ServiceSpec, build_meta, id_problem, name_problem, weight_problem
from .virtualhost import virtual_meta

__all__ = ["HostSettings", "services_for"]

# Keys with a meaning of their own; any other SERVICE_* key becomes Meta.
KNOWN = frozenset({"name", "id", "tags", "ignore", "weight", "ports"})
CHECK_PREFIX = "check_"
MAX_TAG = 255


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


@dataclass(frozen=True)
class _Reading:
    """One container being read: its keys, whether it has several ports, and where warnings go."""

    container: ContainerInfo
    host: HostSettings
    keys: dict[str, str]
    several: bool
    where: str
    warnings: list[str] = field(compare=False)


def _ignored(keys: Mapping[str, str], host: HostSettings) -> bool:
    """SERVICE_IGNORE set, or (with ``explicit``) no SERVICE_NAME: registrator's two opt-outs."""
    if keys.get("ignore", "").strip().lower() not in ("", "false", "0", "no"):
        return True
    return host.explicit and "name" not in keys


def services_for(
    container: ContainerInfo, host: HostSettings
) -> tuple[tuple[ServiceSpec, ...], tuple[str, ...]]:
    """Return the services a running container asks for, and a warning for each value skipped."""
    keys = _service_keys(container)
    warnings: list[str] = []
    where = f"container {container.name or container.short_id}"
    if _ignored(keys, host):
        return (), ()
    ports = ports_to_register(container, host, all_ports(container, keys, where, warnings))
    if not ports and keys:
        # It asked for a service (some SERVICE_* key) and would otherwise vanish without a word.
        warnings.append(
            f"{where} asks for a service but has no port to register: {no_port_reason(container, host)}"
        )
    reading = _Reading(container, host, keys, len(ports) > 1, where, warnings)
    specs = []
    for binding, address, port in ports:
        own = _for_port(keys, binding.port)
        if not _ignored(own, host) and (spec := _service(reading, binding, address, port, own)) is not None:
            specs.append(spec)
    return tuple(_unique_ids(specs, where, warnings)), tuple(warnings)


def _name(reading: _Reading, binding: PortBinding, keys: dict[str, str]) -> str:
    """SERVICE_<port>_NAME, else SERVICE_NAME (or the image's name) suffixed by the port when several."""
    base = keys.get("name", _image_basename(reading.container.image))
    specific = reading.keys.get(f"{binding.port}_name")
    name = specific if specific is not None else (f"{base}-{binding.port}" if reading.several else base)
    return name.strip()


def _service(
    reading: _Reading, binding: PortBinding, address: str, port: int, keys: dict[str, str]
) -> ServiceSpec | None:
    name, where = _name(reading, binding, keys), reading.where
    suffix = ":udp" if binding.protocol == "udp" else ""
    sid = keys.get("id", f"{reading.host.hostname}:{reading.container.name}:{binding.port}{suffix}").strip()
    for what, value, problem in (
        ("service name", name, name_problem(name)),
        ("service ID", sid, id_problem(sid)),
    ):
        if problem is not None:
            reading.warnings.append(
                f"{where}: {what} {value[:80]!r} (port {binding.port}) {problem.says}; the port is not registered"
            )
            return None
    svc = PortService(reading.container, sid, name, address, port, keys, where, reading.warnings)
    return ServiceSpec(
        id=sid,
        name=name,
        address=address,
        port=port,
        tags=_tags(keys.get("tags", ""), where, reading.warnings),
        meta=_all_meta(reading, binding, keys),
        weight=_weight(keys.get("weight"), where, reading.warnings),
        checks=checks_for(svc),
        origin=where,
    )


def _all_meta(reading: _Reading, binding: PortBinding, keys: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """SERVICE_* meta, then nginx-proxy's VIRTUAL_* as nginx-host/nginx-path (virtualhost.py), which win."""
    meta = dict(_meta(keys, reading.where, reading.warnings))
    container, where, warnings = reading.container, reading.where, reading.warnings
    meta.update(virtual_meta(container, binding.port, reading.several, where, warnings))
    return tuple(sorted(meta.items()))


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
        weight: int | str = int(text.strip())
    except ValueError:
        weight = text  # not a number: weight_problem says so
    problem = weight_problem(weight)
    if problem is not None:
        warnings.append(label_warning(where, "SERVICE_WEIGHT", text, problem, "ignored"))
        return None
    return int(weight)


def _meta(keys: dict[str, str], where: str, warnings: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = [(k, v) for k, v in sorted(keys.items()) if k not in KNOWN and not k.startswith(CHECK_PREFIX)]
    meta, problems = build_meta(pairs)
    # "Meta key 'bad.key' is not ...; skipped", "Meta has more than 62 keys ...; skipped"
    warnings.extend(f"{where}: Meta {p.part + ' ' if p.part else ''}{p.says}; skipped" for p in problems)
    return meta
