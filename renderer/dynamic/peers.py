"""One ``upstream`` block read back from a rendered file: its server lines and the peers they name. Pure.

The file is the durable truth: runtime state is always *derived* from the texts just rendered, never
from the catalog. A change is server-only when the texts, with the ``server`` lines of the upstreams in
question taken out, are equal: then nothing but peers moved, and that is all a push (dynamic mode) or a
reload without ``nginx -t`` (classic mode) needs to carry. Anything else is structural and takes the
checked reload path. Every doubt (a host name, a parameter we cannot vouch for, a block we cannot
read) counts as structural: the plan is only ever a shortcut, never a guess.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from functools import cached_property

__all__ = ["HOOK", "MARK", "Peer", "ServerLine", "Upstream", "hook_line", "upstream_of"]

HOOK = '    balancer_by_lua_block {{ require("upstreams.balancer").balance("{name}") }}'
NAME = re.compile(r"\A[A-Za-z0-9_.-]{1,1024}\Z")  # what the Lua side accepts as an upstream name
MAX_PEERS = 10_000  # per upstream, the Lua side's cap
MAX_WEIGHT = 1000  # the Lua side's cap (DYNAMIC.md); nginx itself takes more, but the push could not
NO_BACKUP = frozenset({"hash", "ip_hash", "random"})  # nginx refuses `backup` under these methods
MARK = "\0servers\n"  # stands for a run of server lines in the skeleton (never in a rendered text)

_SERVER = re.compile(r"^[ \t]*server[ \t]+([^;#{}\n\r\"'\\$]*?)[ \t]*;[ \t]*\n", re.MULTILINE)
_SERVER_RUN = re.compile(rf"(?:{_SERVER.pattern})+", re.MULTILINE)
_V4 = re.compile(r"\A([0-9.]{7,15})(?::([0-9]{1,5}))?\Z")
_V6 = re.compile(r"\A\[([0-9A-Fa-f:.]{2,45})\](?::([0-9]{1,5}))?\Z")
_PARAM = re.compile(
    r"\A(?:weight=[0-9]{1,4}|backup|down|max_fails=[0-9]{1,6}|fail_timeout=[0-9]{1,6}(?:ms|s|m|h)?)\Z"
)
_DIRECTIVE = re.compile(r"^[ \t]*([a-z_]+)", re.MULTILINE)
_COMMENT = re.compile(r"^[ \t]*#.*\n", re.MULTILINE)
_OPAQUE = re.compile(r"[{}\"']")


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
    body: str = ""  # the block's lines between its braces, as written
    skeleton: str = ""  # the body with each run of server lines replaced by one mark

    @cached_property
    def safe(self) -> bool:
        """Whether nginx accepts these servers without a check (and, if hooked, they can be pushed)."""
        if not self.servers or not all(s.ok for s in self.servers):
            return False  # no server at all is an nginx error; a line we cannot vouch for needs the check
        return not (self.methods & NO_BACKUP and any(s.peer and s.peer.backup for s in self.servers))

    @cached_property
    def pushable(self) -> bool:
        """Whether runtime state can hold this upstream: hooked, safe, a name and a size the Lua side takes."""
        return self.hooked and self.safe and bool(NAME.match(self.name)) and len(self.servers) <= MAX_PEERS

    @cached_property
    def peers(self) -> tuple[Peer, ...]:
        """The peers nginx routes to, in file order (``down`` lines left out)."""
        return tuple(s.peer for s in self.servers if s.peer is not None)

    def shape(self, *, hooked_only: bool) -> str:
        """What must not change for a server-only change: the skeleton, or all of it when not chosen."""
        return self.body if hooked_only and not self.hooked else self.skeleton


def upstream_of(name: str, body: str) -> Upstream | None:
    """The upstream of this body; None when the body holds a block (hook aside) we cannot read."""
    hook = hook_line(name)
    lines = body.splitlines()
    hooked = hook in lines
    # Other braces mean a nested block or a block that never closed where we thought; quotes, a string
    # that may span lines (and hold what looks like server lines). Neither is ours to read. (Searched
    # line by line only when the body has such a character besides its hook lines: it mostly has none.)
    rest = f"\n{body}".replace(f"\n{hook}\n", "\n") if hooked else body
    if _OPAQUE.search(rest) and any(_OPAQUE.search(line) and line != hook for line in lines):
        return None
    servers = tuple(_server(m.group(1)) for m in _SERVER.finditer(body))
    methods = frozenset(_DIRECTIVE.findall(_SERVER.sub("", body))) - {"balancer_by_lua_block"}
    # Comment lines mean nothing to nginx: the empty upstream's "# no healthy instance" comes and goes
    # with its instances, and that must not make the flip to or from empty structural.
    skeleton = _SERVER_RUN.sub(MARK, _COMMENT.sub("", body))
    return Upstream(name, hooked, servers, methods, body, skeleton)


@functools.lru_cache(maxsize=65536)  # a changed block's other lines, the same instance in two upstreams
def _server(text: str) -> ServerLine:
    """One server line's arguments: the address first, then parameters."""
    # Split on runs of blanks (the line's own ends are stripped already); str.split() would also
    # split on other whitespace, which nginx does not take here.
    address, *params = [part for part in text.replace("\t", " ").split(" ") if part]
    where = _ip_port(address)
    names = [p.split("=", 1)[0] for p in params]
    ok = where is not None and all(_PARAM.match(p) for p in params) and len(set(names)) == len(names)
    # Only once every parameter matched is "weight=" known to be followed by digits.
    weight = next((int(p[7:]) for p in params if p.startswith("weight=")), 1) if ok else 1
    ok = ok and 1 <= weight <= MAX_WEIGHT
    down = "down" in params
    if not ok or down or where is None:
        return ServerLine(text, None, down, ok)
    return ServerLine(text, Peer(where[0], where[1], weight, "backup" in params), down, ok)


@functools.lru_cache(maxsize=65536)  # addresses repeat across upstreams and renders
def _ip_port(address: str) -> tuple[str, int] | None:
    """(IP, port) of ``1.2.3.4:80`` or ``[::1]:80`` (port 80 when absent, as nginx); None for anything else."""
    match = _V4.match(address) or _V6.match(address)
    if match is None:
        return None
    host, port = match.group(1), int(match.group(2) or 80)
    if _plain_v4(host):
        return (host, port) if 1 <= port <= 65535 and not address.startswith("[") else None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None  # a host name (nginx resolves it once, at load) or a malformed literal
    if (ip.version == 6) != address.startswith("[") or not 1 <= port <= 65535:
        return None
    return str(ip), port


def _plain_v4(host: str) -> bool:
    """An IPv4 literal written as ``ipaddress`` writes it (four decimal parts, no leading zero): the
    common case, told in a microsecond instead of ipaddress's five (20,000 lines at a first render)."""
    parts = host.split(".")
    return len(parts) == 4 and all(
        p.isdigit() and p.isascii() and len(p) <= 3 and int(p) <= 255 and (p == "0" or p[0] != "0")
        for p in parts
    )
