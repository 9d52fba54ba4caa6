"""The peer document: what is pushed, what the endpoint answers to GET, what the state file holds. Pure.

One JSON shape for all three (DYNAMIC.md): ``{"generation": N, "full": bool, "upstreams": {NAME: [peer,
...]}}``. Everything is validated here by the same rules as the Lua side, before a byte is pushed:
``nginx -t`` never runs Lua code, so the sidecar is the first of two gates and hostile data stops at it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from plumbing.errors import DynamicUpdateInvalid

from .peers import MAX_PEERS, MAX_WEIGHT, NAME, Peer

__all__ = [
    "HEAD",
    "MAX_BODY",
    "MAX_UPSTREAMS",
    "Encoder",
    "PeerState",
    "State",
    "decode",
    "encode",
    "next_generation",
]

MAX_UPSTREAMS = 100_000
MAX_BODY = 16 * 1024 * 1024  # bytes; the endpoint's client_max_body_size
PeerState = Mapping[str, tuple[Peer, ...]]
HEAD = re.compile(rb'\{"generation":([0-9]{1,16})[,}]')  # how the sidecar and the endpoint begin a document
T = TypeVar("T")


@dataclass(frozen=True)
class State:
    """A decoded document."""

    generation: int
    full: bool
    upstreams: PeerState


def next_generation(last: int, now_ms: int) -> int:
    """Strictly increasing, and ahead of the clock: a restarted sidecar still moves forward."""
    return max(last + 1, now_ms)


class Encoder:
    """Encodes documents, reusing an upstream's checked JSON while its peers are the same tuple object.

    Consecutive parses share the tuples of unchanged upstreams (``texts.parse``), so a full state of
    5,000 upstreams after a flip checks and encodes one upstream, not all of them. Given the state it
    encoded last as ``base`` and what ``changed`` since, it touches only those (the rest is one join).
    """

    def __init__(self) -> None:
        self._known: dict[int, tuple[str, tuple[Peer, ...], str]] = {}  # id(peers) -> name, peers, JSON
        self._last: PeerState | None = None  # the last full state encoded, its JSON parts, where each is
        self._parts: list[str] = []
        self._size = 0  # sum(len(part) for part in self._parts), kept as parts are replaced
        self._at: dict[str, int] = {}

    def encode(
        self,
        generation: int,
        upstreams: PeerState,
        *,
        full: bool,
        base: PeerState | None = None,
        changed: PeerState | None = None,
    ) -> bytes:
        """The document as bytes; DynamicUpdateInvalid if anything in it breaks the rules."""
        return self.prepare(generation, upstreams, full=full, base=base, changed=changed)()

    def prepare(
        self,
        generation: int,
        upstreams: PeerState,
        *,
        full: bool,
        base: PeerState | None = None,
        changed: PeerState | None = None,
    ) -> Callable[[], bytes]:
        """Check the document now (DynamicUpdateInvalid), make its bytes later: the state file after a
        push needs megabytes joined, which the push itself need not wait for."""
        _check_generation(generation)
        if len(upstreams) > MAX_UPSTREAMS:
            raise DynamicUpdateInvalid(
                f"The update holds {len(upstreams)} upstreams, over the cap of {MAX_UPSTREAMS}."
            )
        head = f'{{"generation":{generation},"full":{"true" if full else "false"},"upstreams":{{'
        if full and base is not None and base is self._last and changed is not None and self._delta(changed):
            self._last = upstreams
            pieces = list(self._parts)  # as they are now: a later encode may replace some
            size = len(head) + self._size + len(pieces) + 1  # not summed again: 5,000 parts a flip
        else:
            pieces = [self._all(upstreams, full=full)]
            size = len(head) + len(pieces[0]) + 2  # the one piece and the two closing braces
        if size > MAX_BODY:
            raise DynamicUpdateInvalid(f"The update is {size} bytes, over the cap of {MAX_BODY}.")
        return lambda: f"{head}{','.join(pieces)}}}}}".encode("ascii")

    def _delta(self, changed: PeerState) -> bool:
        """Replace the parts of the changed upstreams; False (nothing replaced) when one is new."""
        if any(name not in self._at for name in changed):
            return False
        fresh = [(self._at[name], self._fragment(name, peers)[2]) for name, peers in changed.items()]
        for at, part in fresh:  # only once every one is checked: a refusal leaves the parts as they were
            self._size += len(part) - len(self._parts[at])
            self._parts[at] = part
        return True

    def _all(self, upstreams: PeerState, *, full: bool) -> str:
        entries = [self._fragment(name, peers) for name, peers in upstreams.items()]
        fresh = {id(entry[1]): entry for entry in entries}
        # A full document holds every upstream there is: what it does not hold need not be kept.
        self._known = fresh if full else {**self._known, **fresh}
        parts = [entry[2] for entry in entries]
        if full:
            self._last, self._parts, self._size = upstreams, parts, sum(map(len, parts))
            self._at = {entry[0]: i for i, entry in enumerate(entries)}
        return ",".join(parts)

    def answer(self, upstreams: PeerState) -> Iterator[bytes]:
        """The bytes nginx's GET answers for runtime state ``upstreams``, past its ``{"generation":N,``.

        As store.lua's ``document_text`` writes them: the names sorted bytewise (its "names" key, kept
        by ``table.sort``), each as ``"NAME":`` and the peers its ``encode_peers`` made of the validated
        ones, which is this encoder's JSON of each; then the newline of ``ngx.say``. In pieces, the
        fragments this encoder keeps (the answer itself is megabytes); DynamicUpdateInvalid if
        ``upstreams`` breaks a rule (then no answer can equal them).
        """
        yield b'"full":true,"upstreams":{'
        for i, name in enumerate(sorted(upstreams)):
            if i:
                yield b","
            yield self._fragment(name, upstreams[name])[2].encode("ascii")
        yield b"}}\n"

    def _fragment(self, name: str, peers: tuple[Peer, ...]) -> tuple[str, tuple[Peer, ...], str]:
        known = self._known.get(id(peers))
        if known is not None and known[1] is peers and known[0] == name:
            return known
        listed = [_peer(name, p).as_json() for p in _capped(name, peers)]
        text = json.dumps(_name(name)) + ":" + json.dumps(listed, separators=(",", ":"))
        return name, peers, text


def encode(generation: int, upstreams: PeerState, *, full: bool) -> bytes:
    """The document as bytes (with nothing reused); DynamicUpdateInvalid if anything breaks the rules."""
    return Encoder().encode(generation, upstreams, full=full)


def decode(data: bytes, where: str) -> State:
    """A document read back (a GET answer, the state file); DynamicUpdateInvalid naming ``where``."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise DynamicUpdateInvalid(f"{where} is not a JSON document: {exc}.") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("upstreams"), dict):
        raise DynamicUpdateInvalid(f"{where} is not a peer document (no 'upstreams' object).")
    generation, full = doc.get("generation"), doc.get("full", True)
    if not isinstance(full, bool):
        raise DynamicUpdateInvalid(f"{where}: 'full' must be true or false.")
    try:
        _check_generation(generation)
        upstreams = {_name(name): _peers(name, peers) for name, peers in doc["upstreams"].items()}
    except DynamicUpdateInvalid as exc:
        raise DynamicUpdateInvalid(f"{where}: {exc}") from None
    assert isinstance(generation, int)
    return State(generation, full, upstreams)


def _check_generation(generation: object) -> None:
    # JSON numbers are doubles on the Lua side: stay where they are exact.
    if isinstance(generation, bool) or not isinstance(generation, int) or not 0 <= generation < 2**53:
        raise DynamicUpdateInvalid(f"The generation {generation!r} is not an integer from 0 to 2^53.")


def _name(name: object) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise DynamicUpdateInvalid(f"The upstream name {str(name)[:80]!r} is not one nginx can use.")
    return name


def _peers(name: str, peers: object) -> tuple[Peer, ...]:
    if not isinstance(peers, list):
        raise DynamicUpdateInvalid(f"Upstream {name}'s peers are not a list.")
    return tuple(_peer(name, _peer_of(name, p)) for p in _capped(name, peers))


def _capped(name: str, peers: Sequence[T]) -> Sequence[T]:
    if len(peers) > MAX_PEERS:
        raise DynamicUpdateInvalid(f"Upstream {name} has {len(peers)} peers, over the cap of {MAX_PEERS}.")
    return peers


def _peer_of(name: str, raw: Any) -> Peer:
    if not isinstance(raw, dict) or set(raw) - {"address", "port", "weight", "backup"}:
        raise DynamicUpdateInvalid(
            f"Upstream {name} has a peer that is not an address, port, weight, backup."
        )
    # Any types at all: _peer checks each field before the peer is used.
    fields: dict[str, Any] = {"address": None, "port": None, "weight": 1, "backup": False, **raw}
    return Peer(fields["address"], fields["port"], fields["weight"], fields["backup"])


def _peer(name: str, peer: Peer) -> Peer:
    """The peer, checked: an IP literal, a port, a weight in range, backup a boolean."""
    address, port, weight = peer.address, peer.port, peer.weight
    if not isinstance(address, str) or not _is_ip(address):
        raise DynamicUpdateInvalid(
            f"Upstream {name} has a peer address {str(address)[:80]!r}, not an IP literal."
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise DynamicUpdateInvalid(f"Upstream {name} has a peer port {port!r}, not 1 to 65535.")
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
        raise DynamicUpdateInvalid(f"Upstream {name} has a peer weight {weight!r}, not 1 to {MAX_WEIGHT}.")
    if not isinstance(peer.backup, bool):
        raise DynamicUpdateInvalid(f"Upstream {name} has a peer whose 'backup' is not true or false.")
    return peer


def _is_ip(address: str) -> bool:
    if "%" in address or not address.isascii():
        return False  # scoped IPv6 addresses name an interface; the balancer cannot use them
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return str(ip) == address  # one spelling only: what peers.py writes, what Lua compares
