"""What the companion wants registered: frozen service and check specs, and their Consul 1.8 bodies.

Every registration carries two Meta keys: ``upstreams-registrar`` names the host whose companion owns it
(only services with this host's value are ever deregistered), and ``upstreams-registrar-digest`` is a
hash of the rest of the body, so comparing digests tells whether the agent holds the current version.
Bodies contain only fields Consul 1.8 knows (it rejects unknown ones with 400).

The rules a spec's values must follow are written once, here, as builders that return problems
(``Problem``: the field at fault and a phrase saying what it must be). Labels turn each problem into a
warning and drop or replace the value (``labels``); service files turn the first into a ConfigError
(``files``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from plumbing.duration import format_duration

__all__ = [
    "DIGEST_KEY",
    "MAX_META",
    "OWNER_KEY",
    "CheckSpec",
    "Problem",
    "ServiceSpec",
    "Timing",
    "build_meta",
    "build_timing",
    "check_ttl",
    "id_problem",
    "name_problem",
    "registration_body",
    "valid_meta_key",
    "valid_service_name",
    "weight_problem",
]

OWNER_KEY = "upstreams-registrar"
DIGEST_KEY = "upstreams-registrar-digest"
MAX_META = 64  # Consul's limit on Meta pairs, ours included
MAX_META_KEY = 128
MAX_META_VALUE = 512
STATUSES = ("passing", "warning", "critical")
MIN_DEREGISTER_AFTER = 60.0  # Consul's minimum for DeregisterCriticalServiceAfter
DEFAULT_INTERVAL = 10.0
MAX_TIMEOUT_DEFAULT = 5.0  # a check's timeout defaults to this, or to its interval when shorter
CheckKind = Literal["http", "tcp", "ttl", "script", "health"]

_META_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def valid_meta_key(key: str) -> bool:
    """Consul's rule for Meta keys, plus our own two keys being reserved."""
    return (
        bool(_META_KEY.match(key))
        and not key.lower().startswith("consul-")
        and key not in (OWNER_KEY, DIGEST_KEY)
    )


def valid_service_name(name: str) -> bool:
    """A name usable in DNS and URLs: letters, digits, '_', '.', '-', at most 63 characters."""
    return bool(_SERVICE_NAME.match(name))


@dataclass(frozen=True, kw_only=True)
class CheckSpec:
    """One check of a service.

    ``http`` and ``tcp`` checks are run by the Consul agent; ``ttl`` checks are heartbeated by the
    application; ``script`` and ``health`` checks are TTL checks the companion itself keeps up to date
    (a command run in the container or on the host; a container's own HEALTHCHECK status).
    """

    kind: CheckKind
    check_id: str
    name: str
    interval: float = 10.0
    timeout: float = 5.0
    target: str = ""  # URL (http) or host:port (tcp)
    ttl: float | None = None  # kind "ttl": the application's heartbeat period
    argv: tuple[str, ...] = ()  # kind "script"
    container_id: str | None = None  # script/health: the container; None runs the script on the host
    initial_status: str | None = None
    deregister_after: float | None = None

    @property
    def runs_here(self) -> bool:
        """True when the companion itself must keep this check's status up to date."""
        return self.kind in ("script", "health")


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    """One service registration the companion wants on its agent."""

    id: str
    name: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()
    weight: int | None = None
    checks: tuple[CheckSpec, ...] = ()
    origin: str = ""  # for messages: "container web-1", "service file db.toml"


@dataclass(frozen=True)
class Problem:
    """One value a spec cannot take: the field at fault and what it must be ("must be ...").

    ``part`` narrows it down within the field ("key 'x'" of the meta table); ``says`` then follows the
    part as its predicate ("is not ...").
    """

    field: str
    says: str
    part: str = ""


@dataclass(frozen=True, kw_only=True)
class Timing:
    """The fields every kind of check shares."""

    interval: float = DEFAULT_INTERVAL
    timeout: float = MAX_TIMEOUT_DEFAULT
    initial_status: str | None = None
    deregister_after: float | None = None


def name_problem(name: str) -> Problem | None:
    """A service name usable in DNS and URLs, or the problem with it."""
    if valid_service_name(name):
        return None
    return Problem("name", "must be letters, digits, '_', '.', '-' of at most 63 characters")


def id_problem(sid: str) -> Problem | None:
    """A service ID the agent's URL paths can carry, or the problem with it."""
    if sid and len(sid) <= 256 and not any(ord(ch) < 32 or ch == "/" for ch in sid):
        return None
    return Problem("id", "must be 1 to 256 characters without '/' or control characters")


def weight_problem(weight: object) -> Problem | None:
    """A passing weight Consul accepts (a bool is no number, though Python says it is an int)."""
    if isinstance(weight, int) and not isinstance(weight, bool) and 1 <= weight <= 65535:
        return None
    return Problem("weight", "must be a whole number from 1 to 65535")


def build_meta(pairs: Iterable[tuple[str, object]]) -> tuple[tuple[tuple[str, str], ...], list[Problem]]:
    """The valid pairs (at most Consul's limit less our two), and a problem for each one left out."""
    meta: dict[str, str] = {}
    problems: list[Problem] = []
    for key, value in pairs:
        if not valid_meta_key(key):
            problems.append(
                Problem(
                    "meta",
                    f"is not [A-Za-z0-9_-] of at most {MAX_META_KEY} characters, starts with 'consul-' or "
                    "is reserved",
                    part=f"key {key[:MAX_META_KEY]!r}",
                )
            )
        elif not isinstance(value, str) or len(value) > MAX_META_VALUE:
            problems.append(
                Problem(
                    "meta",
                    f"is not a string of at most {MAX_META_VALUE} characters",
                    part=f"value of {key!r}",
                )
            )
        elif len(meta) >= MAX_META - 2:  # two pairs are ours
            problems.append(Problem("meta", f"has more than {MAX_META - 2} keys (from {key!r} on)"))
            break
        else:
            meta[key] = value
    return tuple(sorted(meta.items())), problems


def build_timing(
    interval: float | None = None,
    timeout: float | None = None,
    initial_status: str | None = None,
    deregister_after: float | None = None,
) -> tuple[Timing, list[Problem]]:
    """A check's shared fields (None: not given), each bad one replaced by its fallback with a problem."""
    problems: list[Problem] = []
    if interval is not None and interval <= 0:
        problems.append(Problem("interval", "must be above zero"))
        interval = None
    interval = interval or DEFAULT_INTERVAL
    if timeout is not None and timeout <= 0:
        problems.append(Problem("timeout", "must be above zero"))
        timeout = None
    if initial_status is not None and initial_status not in STATUSES:
        problems.append(Problem("initial_status", f"must be one of {', '.join(STATUSES)}"))
        initial_status = None
    if deregister_after is not None and deregister_after < MIN_DEREGISTER_AFTER:
        problems.append(Problem("deregister_after", "must be at least 1m (Consul's minimum)"))
        deregister_after = MIN_DEREGISTER_AFTER
    timing = Timing(
        interval=interval,
        timeout=timeout or min(MAX_TIMEOUT_DEFAULT, interval),
        initial_status=initial_status,
        deregister_after=deregister_after,
    )
    return timing, problems


def check_ttl(check: CheckSpec) -> float:
    """The TTL given to a check the companion updates: three missed runs turn it critical."""
    return 3 * check.interval + check.timeout


def _check_body(check: CheckSpec) -> dict[str, Any]:
    body: dict[str, Any] = {"CheckID": check.check_id, "Name": check.name}
    if check.kind in ("http", "tcp"):  # run by the agent: "HTTP" or "TCP" names the target
        body[check.kind.upper()] = check.target
        body["Interval"] = format_duration(check.interval)
        body["Timeout"] = format_duration(check.timeout)
    elif check.kind == "ttl":
        body["TTL"] = format_duration(check.ttl or check.interval)
    else:
        body["TTL"] = format_duration(check_ttl(check))
        if check.kind == "script":
            body["Notes"] = "Run by upstreams-registrar: " + " ".join(check.argv)[:400]
    if check.initial_status:
        body["Status"] = check.initial_status
    if check.deregister_after is not None:
        body["DeregisterCriticalServiceAfter"] = format_duration(check.deregister_after)
    return body


def registration_body(spec: ServiceSpec, owner: str) -> dict[str, Any]:
    """The ``PUT /v1/agent/service/register`` body for a spec, marked as owned by ``owner``."""
    meta = dict(spec.meta)
    meta[OWNER_KEY] = owner
    body: dict[str, Any] = {
        "ID": spec.id,
        "Name": spec.name,
        "Tags": list(spec.tags),
        "Address": spec.address,
        "Port": spec.port,
        "Meta": meta,
        "Checks": [_check_body(c) for c in spec.checks],
    }
    if spec.weight is not None:
        body["Weights"] = {"Passing": spec.weight, "Warning": 1}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    meta[DIGEST_KEY] = digest
    return body


def body_digest(body: dict[str, Any]) -> str:
    """The digest stored in a registration body's Meta."""
    return str(body["Meta"][DIGEST_KEY])
