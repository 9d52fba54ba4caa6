"""Rendered files read back: their ``upstream`` blocks, the peers of each, and the server-only plan. Pure.

The file is the durable truth: runtime state is always *derived* from the texts just rendered, never
from the catalog. A change is server-only when the texts, with the ``server`` lines of the upstreams in
question taken out, are equal: then nothing but peers moved, and that is all a push (dynamic mode) or a
reload without ``nginx -t`` (classic mode) needs to carry. Anything else is structural and takes the
checked reload path. Every doubt (a host name, a parameter we cannot vouch for, a block we cannot
read) counts as structural: the plan is only ever a shortcut, never a guess.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HOOK", "ParsedFile", "Peer", "Plan", "ServerLine", "Upstream", "hook_line", "parse", "plan"]

HOOK = '    balancer_by_lua_block {{ require("upstreams.balancer").balance("{name}") }}'
NAME = re.compile(r"\A[A-Za-z0-9_.-]{1,1024}\Z")  # what the Lua side accepts as an upstream name
MAX_PEERS = 10_000  # per upstream, the Lua side's cap
MAX_WEIGHT = 1000  # the Lua side's cap (DYNAMIC.md); nginx itself takes more, but the push could not
NO_BACKUP = frozenset({"hash", "ip_hash", "random"})  # nginx refuses `backup` under these methods
_MARK = "\0servers\n"  # stands for a run of server lines in the skeleton (never in a rendered text)

_BLOCK = re.compile(
    r"^[ \t]*upstream[ \t]+([^\s{};#\"'\\]+)[ \t]*\{[ \t]*\n((?:.*\n)*?)[ \t]*\}[ \t]*$", re.MULTILINE
)
_SERVER = re.compile(r"^[ \t]*server[ \t]+([^;#{}\n\r\"'\\$]*?)[ \t]*;[ \t]*\n", re.MULTILINE)
_SERVER_RUN = re.compile(rf"(?:{_SERVER.pattern})+", re.MULTILINE)
_V4 = re.compile(r"\A([0-9.]{7,15})(?::([0-9]{1,5}))?\Z")
_V6 = re.compile(r"\A\[([0-9A-Fa-f:.]{2,45})\](?::([0-9]{1,5}))?\Z")
_PARAM = re.compile(
    r"\A(?:weight=[0-9]{1,4}|backup|down|max_fails=[0-9]{1,6}|fail_timeout=[0-9]{1,6}(?:ms|s|m|h)?)\Z"
)
_DIRECTIVE = re.compile(r"^[ \t]*([a-z_]+)", re.MULTILINE)


def hook_line(name: str) -> str:
    """The balancer hook the macro library writes in upstream ``name`` when dynamic mode is on."""
    return HOOK.format(name=name)


@dataclass(frozen=True)
class Peer:
    """One instance nginx may pick: an IP literal (IPv6 without brackets), a port, a weight, backup."""

    address: str
    port: int
    weight: int = 1
    backup: bool = False

    def as_json(self) -> dict[str, object]:
        """The peer as the endpoint, the GET answer and the state file spell it."""
        return {"address": self.address, "port": self.port, "weight": self.weight, "backup": self.backup}


@dataclass(frozen=True)
class ServerLine:
    """A ``server`` line of an upstream: its peer, or None when it is ``down`` or cannot be vouched for."""

    text: str  # the arguments, as written
    peer: Peer | None
    down: bool
    ok: bool  # an IP literal with parameters nginx is known to accept: no check needed to trust it


@dataclass(frozen=True)
class Upstream:
    """One ``upstream`` block: its name, whether it carries the balancer hook, its server lines."""

    name: str
    hooked: bool
    servers: tuple[ServerLine, ...]
    methods: frozenset[str]  # the directives other than server (hash, keepalive, ...)

    @property
    def safe(self) -> bool:
        """Whether nginx accepts these servers without a check (and, if hooked, they can be pushed)."""
        if not self.servers or not all(s.ok for s in self.servers):
            return False  # no server at all is an nginx error; a line we cannot vouch for needs the check
        return not (self.methods & NO_BACKUP and any(s.peer and s.peer.backup for s in self.servers))

    @property
    def pushable(self) -> bool:
        """Whether runtime state can hold this upstream: hooked, safe, a name and a size the Lua side takes."""
        return self.hooked and self.safe and bool(NAME.match(self.name)) and len(self.servers) <= MAX_PEERS

    @property
    def peers(self) -> tuple[Peer, ...]:
        """The peers nginx routes to, in file order (``down`` lines left out)."""
        return tuple(s.peer for s in self.servers if s.peer is not None)


@dataclass(frozen=True)
class ParsedFile:
    """A rendered text read back: its upstream blocks, in order, and where their bodies are."""

    text: str
    upstreams: tuple[Upstream, ...]
    spans: tuple[tuple[int, int], ...]  # the (start, end) of each upstream's body in ``text``

    def skeleton(self, *, hooked_only: bool) -> str:
        """The text with each run of server lines of the chosen upstreams replaced by one mark."""
        pieces, at = [], 0
        for upstream, (start, end) in zip(self.upstreams, self.spans, strict=True):
            if hooked_only and not upstream.hooked:
                continue
            pieces += [self.text[at:start], _SERVER_RUN.sub(_MARK, self.text[start:end])]
            at = end
        pieces.append(self.text[at:])
        return "".join(pieces)


@dataclass(frozen=True)
class Plan:
    """A server-only change: the upstreams whose peers changed, and the full runtime state after it."""

    changed: Mapping[str, tuple[Peer, ...]]
    state: Mapping[str, tuple[Peer, ...]]


def parse(text: str) -> ParsedFile:
    """Read a rendered text's upstream blocks; never raises (unreadable blocks are simply not upstreams)."""
    upstreams, spans = [], []
    for block in _BLOCK.finditer(text):
        upstream = _upstream(block.group(1), block.group(2))
        if upstream is not None:
            upstreams.append(upstream)
            spans.append(block.span(2))
    return ParsedFile(text, tuple(upstreams), tuple(spans))


def _upstream(name: str, body: str) -> Upstream | None:
    """The upstream of this body; None when the body holds a block (hook aside) we cannot read."""
    hook = hook_line(name)
    lines = body.splitlines()
    hooked = hook in lines
    # Other braces mean a nested block or a block that never closed where we thought: not ours to read.
    if any(("{" in line or "}" in line) and line != hook for line in lines):
        return None
    servers = tuple(_server(m.group(1)) for m in _SERVER.finditer(body))
    methods = frozenset(_DIRECTIVE.findall(_SERVER.sub("", body))) - {"balancer_by_lua_block"}
    return Upstream(name=name, hooked=hooked, servers=servers, methods=methods)


def _server(text: str) -> ServerLine:
    """One server line's arguments: the address first, then parameters."""
    address, *params = re.split(r"[ \t]+", text)
    where = _ip_port(address)
    names = [p.split("=", 1)[0] for p in params]
    ok = where is not None and all(_PARAM.match(p) for p in params) and len(set(names)) == len(names)
    weight = next((int(p[7:]) for p in params if p.startswith("weight=")), 1)
    ok = ok and 1 <= weight <= MAX_WEIGHT
    down = "down" in params
    if not ok or down or where is None:
        return ServerLine(text, None, down, ok)
    return ServerLine(text, Peer(where[0], where[1], weight, "backup" in params), down, ok)


def _ip_port(address: str) -> tuple[str, int] | None:
    """(IP, port) of ``1.2.3.4:80`` or ``[::1]:80`` (port 80 when absent, as nginx); None for anything else."""
    match = _V4.match(address) or _V6.match(address)
    if match is None:
        return None
    host, port = match.group(1), int(match.group(2) or 80)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None  # a host name (nginx resolves it once, at load) or a malformed literal
    if (ip.version == 6) != address.startswith("[") or not 1 <= port <= 65535:
        return None
    return str(ip), port


def plan(
    old: Mapping[Path, ParsedFile | None], new: Mapping[Path, ParsedFile], *, hooked_only: bool
) -> Plan | None:
    """The server-only plan from the previous to the new texts of every destination, or None.

    ``hooked_only``: dynamic mode, where only upstreams with the balancer hook can change without a
    reload; classic mode looks at every upstream block (a reload, but no check). None when a file is
    new or gone, the skeletons differ, or a changed upstream is not ``safe``.
    """
    if set(old) != set(new):
        return None
    changed: dict[str, tuple[Peer, ...]] = {}
    for path, after in new.items():
        before = old[path]
        if before is None:
            return None  # a first render: nothing proven yet
        found = _changed(before, after, hooked_only=hooked_only)
        if found is None:
            return None
        changed.update((u.name, u.peers) for u in found)
    state = runtime_state(new.values())
    if not changed or state is None:
        # Nothing a push or a reload would carry (say, a parameter written another way) is rare
        # enough to take the checked path; two upstreams of one name are nginx's to refuse.
        return None
    return Plan(changed, state)


def _changed(before: ParsedFile, after: ParsedFile, *, hooked_only: bool) -> list[Upstream] | None:
    if before.text == after.text:
        return []
    if before.skeleton(hooked_only=hooked_only) != after.skeleton(hooked_only=hooked_only):
        return None
    # Equal skeletons: the same upstream blocks, in the same order, with the same names and hooks.
    pairs = zip(before.upstreams, after.upstreams, strict=True)
    found = [b for a, b in pairs if a.servers != b.servers and (b.hooked or not hooked_only)]
    ok = all(u.pushable if hooked_only else u.safe for u in found)
    return found if ok else None


def runtime_state(files: Iterable[ParsedFile]) -> dict[str, tuple[Peer, ...]] | None:
    """Every hooked upstream that can be pushed, with its peers; None when two share a name."""
    state: dict[str, tuple[Peer, ...]] = {}
    seen: set[str] = set()
    for parsed in files:
        for upstream in parsed.upstreams:
            if not upstream.hooked:
                continue
            folded = upstream.name.lower()  # nginx compares upstream names without case
            if folded in seen:
                return None
            seen.add(folded)
            if upstream.pushable:
                state[upstream.name] = upstream.peers
    return state
