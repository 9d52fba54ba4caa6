"""Leaving out instances nginx rejects, so one bad registration cannot freeze a whole file.

nginx's check names the file and line it refused (``host not found in upstream "x:80" in
/etc/nginx/conf.d/upstreams.conf:3``). When that line is a ``server`` directive written from an
instance's address, the instance is left out of the snapshot the templates see, and the rest is
rendered and checked again. An exclusion lasts while the instance stays registered exactly as it
was when nginx rejected it (its health may change); once its registration changes, it is rendered
again. Everything here is pure: parsing nginx's words, mapping a line to instances, filtering.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from discovery.model import Dependency, Instance, Snapshot

__all__ = [
    "CheckProblem",
    "Exclusion",
    "culprits",
    "find_exclusions",
    "hostport",
    "line_of",
    "parse_check_error",
    "registration",
    "server_argument",
    "still_registered",
    "without",
]

# nginx -t writes "nginx: [emerg] REASON in FILE:LINE", or "DATE TIME [emerg] PID#TID: REASON in
# FILE:LINE" once the config names an error_log; our NginxCheckFailed message joins output lines with
# " / ". The reason is greedy so that a reason containing " in " still ends at the last " in FILE:LINE".
_PROBLEM = re.compile(
    r"\[(?:emerg|alert|crit|error)\] (?:\d+#\d+: )?(?P<reason>.+) in (?P<file>/.+?):(?P<line>\d+)\Z"
)
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t"}


@dataclass(frozen=True)
class CheckProblem:
    """Where nginx's check failed and why, in nginx's own words."""

    file: Path
    line: int
    reason: str


@dataclass(frozen=True)
class Exclusion:
    """One instance left out of rendering, with what nginx said about its line."""

    instance: Instance
    reason: str
    file: Path
    line: int

    def describe(self) -> dict[str, object]:
        """The exclusion as the status document shows it."""
        i = self.instance
        return {
            "service": i.name,
            "id": i.id,
            "node": i.node,
            "address": i.address,
            "port": i.port,
            "reason": self.reason,
            "file": str(self.file),
            "line": self.line,
        }


def parse_check_error(message: str) -> CheckProblem | None:
    """The first ``[emerg] REASON in FILE:LINE`` in nginx's output, or None when it names no line."""
    for part in re.split(r"\n| / ", message):
        match = _PROBLEM.search(part.strip())
        if match:
            return CheckProblem(Path(match["file"]), int(match["line"]), match["reason"])
    return None


def line_of(text: str, number: int) -> str | None:
    """Line ``number`` (1-based, as nginx counts: by newline) of a rendered text."""
    lines = text.split("\n")
    return lines[number - 1] if 1 <= number <= len(lines) else None


def server_argument(line: str) -> str | None:
    """The address of a ``server ADDRESS ...;`` directive (unquoted), or None for any other line.

    ``server {`` (a virtual host) and ``server_name`` are not upstream servers and give None.
    """
    match = re.match(r'\s*server\s+("(?:[^"\\]|\\.)*"|[^\s;{]+)(?=[\s;])', line)
    if not match:
        return None
    word = match[1]
    if word.startswith('"'):
        # The escaping of renderer/escape.py in reverse: \\, \", \n, \r, \t.
        return re.sub(r"\\(.)", lambda m: _UNESCAPE.get(m[1], m[1]), word[1:-1])
    return word


def hostport(instance: Instance) -> str:
    """``address:port`` as the macro library writes it (IPv6 addresses in brackets)."""
    host = f"[{instance.address}]" if ":" in instance.address else instance.address
    return f"{host}:{instance.port}"


def culprits(line: str, instances: Iterable[Instance]) -> frozenset[Instance]:
    """The instances a rejected ``server`` line was written from; empty when it names none.

    First by exact ``address:port``; failing that (a template writing the address its own way),
    every instance whose address the argument starts with. Instances that render the same line cannot
    be told apart, and all of them are returned: nginx would reject each of them the same way.
    """
    argument = server_argument(line)
    if argument is None:
        return frozenset()
    pool = tuple(instances)
    exact = frozenset(i for i in pool if hostport(i) == argument)
    if exact:
        return exact
    return frozenset(i for i in pool if i.address and _names_host(argument, i.address))


def _names_host(argument: str, address: str) -> bool:
    host = f"[{address}]" if ":" in address else address
    return argument == host or argument.startswith(f"{host}:")


def registration(instance: Instance) -> Instance:
    """The instance without its health: what must change for an excluded instance to come back."""
    return dataclasses.replace(instance, status="passing")


def without(snapshot: Snapshot, excluded: Iterable[Instance]) -> Snapshot:
    """The snapshot with the excluded registrations left out of every service's instances."""
    gone = frozenset(registration(i) for i in excluded)
    if not gone:
        return snapshot
    services = tuple(
        (query, tuple(i for i in instances if registration(i) not in gone))
        for query, instances in snapshot.services
    )
    return dataclasses.replace(snapshot, services=services)


def still_registered(exclusions: Iterable[Exclusion], snapshot: Snapshot) -> tuple[Exclusion, ...]:
    """The exclusions whose instance is still registered unchanged (health aside) in the snapshot."""
    wanted = tuple(exclusions)
    if not wanted:
        return ()  # the usual round: nothing left out, and no instance of the catalog to copy
    # Run every round: only the instances with an excluded one's node and ID are copied without their
    # health (a copy of each of 20,000 instances took most of a flip's time at 5,000 services).
    keys = {(e.instance.node, e.instance.id) for e in wanted}
    present = frozenset(
        registration(i) for _, instances in snapshot.services for i in instances if (i.node, i.id) in keys
    )
    return tuple(e for e in wanted if registration(e.instance) in present)


def find_exclusions(
    problem: CheckProblem, text: str, read: Iterable[Dependency], snapshot: Snapshot
) -> tuple[Exclusion, ...]:
    """The instances that the rejected line of one rendered file was written from, as exclusions.

    Only instances of the services that file's template read are candidates.
    """
    line = line_of(text, problem.line)
    if line is None:
        return ()
    wanted = frozenset(read)
    pool = {i for query, instances in snapshot.services if query in wanted for i in instances}
    found = culprits(line, pool)
    return tuple(Exclusion(i, problem.reason, problem.file, problem.line) for i in sorted(found))
