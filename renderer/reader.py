"""The data functions of one render: what templates read from the snapshot, recorded as they read it.

Instances reach a template as dicts in an ``InstanceList``: a plain list for the template (the
immutable sandbox refuses to change it), which also remembers the frozen Instances it was made from,
so the block cache (``block_cache``) can key a call on them cheaply.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from discovery.model import (
    CatalogQuery,
    Dependency,
    Instance,
    KeyQuery,
    ServiceQuery,
    ServiceSummary,
    Snapshot,
)
from plumbing.errors import TemplateError

from .escape import NGINX_NAME, NginxText
from .functions import DataFunctions, make_env
from .recent import Recent

__all__ = [
    "ConsulName",
    "InstanceList",
    "Reader",
    "Recording",
    "instance_list",
    "instance_view",
    "parse_service_spec",
    "run_recorded",
]

# consul-template's form: [tag.]name[@dc][~near]; the name has no dots, so the tag is all before the last.
_SPEC = re.compile(
    r"\A(?:(?P<tag>[\w.\-]+)\.)?(?P<name>[\w\-/]+)(?:@(?P<dc>[\w.\-]+))?(?:~(?P<near>[\w.\-]+))?\Z"
)


def parse_service_spec(spec: str) -> tuple[str, str | None, str | None, str | None]:
    """Split consul-template's ``"tag.name@dc~near"`` into (name, tag, dc, near)."""
    match = _SPEC.match(spec)
    if not match:
        raise ValueError(f"{spec!r} is not a service name (form: [tag.]name[@dc][~near])")
    return match["name"], match["tag"], match["dc"], match["near"]


class ConsulName(str):
    """A service name exactly as Consul returned it: ``service()`` never reads it as "tag.name@dc"."""

    __slots__ = ()


_NO_META: dict[str, str] = {}  # shared: the sandbox refuses to change a dict, and most nodes have no meta


def instance_view(i: Instance, name: ConsulName) -> dict[str, Any]:
    """The dict a template reads for an instance (``name``: its name, shared by its service's views)."""
    return {
        "id": i.id,
        "name": name,
        "address": i.address,
        "port": i.port,
        "node": i.node,
        "node_address": i.node_address,
        "datacenter": i.datacenter,
        "tags": i.tags,
        "meta": i.meta_dict if i.meta else _NO_META,
        "node_meta": dict(i.node_meta) if i.node_meta else _NO_META,
        "weight": i.weight,
        "status": i.status,
    }


class InstanceList(list[dict[str, Any]]):
    """What ``service()`` returns: the views of ``_source`` (a snapshot's tuple) kept by tag and health."""

    __slots__ = ("_passing", "_source", "_tag")
    _source: tuple[Instance, ...]
    _tag: Any
    _passing: bool


def instance_list(source: tuple[Instance, ...], tag: Any, passing: bool) -> InstanceList:
    """The instances of ``source`` with ``tag`` (any without one), passing ones only if ``passing``."""
    shared = ConsulName(source[0].name if source else "")
    kept = InstanceList(
        [
            instance_view(i, shared if i.name == shared else ConsulName(i.name))
            for i in source
            if (not tag or tag in i.tags) and (not passing or i.status == "passing")
        ]
    )
    kept._source, kept._tag, kept._passing = source, tag, passing
    return kept


@dataclass
class Recording:
    """What a stretch of one render did: the names it claimed (given, result) and how many data reads."""

    claims: list[tuple[Any, str]] = field(default_factory=list)
    data_reads: int = 0


class Reader(DataFunctions):
    """The data functions of one render (ls, tree, node, ... in renderer/functions.py); records what they read."""

    def __init__(
        self, snapshot: Snapshot, allowed_env: Mapping[str, str] | None = None, blocks: Any = None
    ) -> None:
        self.snapshot = snapshot
        self.env = make_env(allowed_env or {})
        self.blocks = blocks  # this template's BlockCache (block_cache), or None
        # What this template's last render worked out for the same call: service()'s query (its name
        # parsed once), services()'s list for the same catalog tuple. Safe to hand that list out again:
        # the immutable sandbox refuses every change to a list or dict, and filters make new ones.
        self.memo: Recent[tuple[Any, ...]] | None = blocks.memo if blocks is not None else None
        self.read: set[Dependency] = set()
        self.missing: set[Dependency] = set()
        self.warnings: list[str] = []
        self.upstreams: dict[str, str] = {}  # lower-cased upstream name -> the name as claimed
        self.recordings: list[Recording] = []  # the block cache's, innermost last

    def _get(self, dep: Dependency, empty: Any) -> Any:
        for recording in self.recordings:
            recording.data_reads += 1
        self.read.add(dep)
        try:
            return self.snapshot.get(dep)
        except KeyError:
            self.missing.add(dep)
            return empty

    def service(
        self,
        name: Any,
        tag: str | None = None,
        dc: str | None = None,
        passing: bool = True,
        near: str | None = None,
    ) -> list[dict[str, Any]]:
        """Instances of a service, sorted; only passing ones unless ``passing=False``."""
        query, wanted = self.service_query(name, tag, dc, near)
        # The dicts are made again each time: kept between renders, 5,000 services' would cost ~13 MB.
        return instance_list(self._get(query, ()), wanted, bool(passing))

    def service_query(self, name: Any, tag: Any, dc: Any, near: Any) -> tuple[ServiceQuery, Any]:
        """What ``service()`` fetches for these arguments, and the tag it keeps (read nothing yet)."""
        # Typed, because ConsulName("a.b") == "a.b" and yet only the str is read as "tag.name".
        key = ("service", type(name), name, type(tag), tag, dc, near)
        found = self._memo(key)
        if found:
            return found  # type: ignore[no-any-return]
        base, spec_tag, spec_dc, spec_near = _service_name(name)
        made = (ServiceQuery(base, dc or spec_dc or "", near or spec_near or ""), tag or spec_tag)
        if found is None and self.memo is not None:
            self.memo.put(key, made)
        return made

    def read_all(self, every: frozenset[ServiceQuery]) -> None:
        """Record every query of ``every`` as read: the larger set copied, the smaller added to it (a
        set's table is copied whole; adding 5,000 queries one by one cost twice as much)."""
        if len(self.read) >= len(every):
            self.read.update(every)
            return
        small, self.read = self.read, set(every)
        self.read.update(small)

    def sources(
        self, queries: list[ServiceQuery], every: frozenset[ServiceQuery]
    ) -> list[tuple[Instance, ...]]:
        """The answers ``service()`` reads for many queries at once (``every``: them as a set), recorded."""
        for recording in self.recordings:
            recording.data_reads += len(queries)
        self.read_all(every)
        get, found = self.snapshot.get, []
        for query in queries:
            try:
                found.append(get(query))
            except KeyError:
                self.missing.add(query)
                found.append(())
        return found  # type: ignore[return-value]

    def services(self, tag: str | None = None, dc: str | None = None) -> list[dict[str, Any]]:
        """Every service (name, tags) sorted by name, optionally only those with a tag."""
        query = CatalogQuery(dc or "")
        summaries: tuple[ServiceSummary, ...] = self._get(query, ())
        key = ("services", type(tag), tag, query)
        found = self._memo(key)
        if found and found[0] is summaries:
            return found[1]  # type: ignore[no-any-return]
        made = [
            {"name": ConsulName(s.name), "tags": s.tags}
            for s in sorted(summaries)
            if not tag or tag in s.tags
        ]
        if self.memo is not None and found is not False:
            self.memo.put(key, (summaries, made))
        return made

    def _memo(self, key: tuple[Any, ...]) -> Any:
        """What this template's last render made for the same call; False when it cannot be remembered."""
        if self.memo is None:
            return None
        try:
            return self.memo.get(key)
        except TypeError:  # an argument that cannot be hashed: made every time
            return False

    def key(self, path: str, default: Any = None) -> Any:
        """A Consul KV value as text, or ``default`` when the key does not exist."""
        value = self._get(KeyQuery(str(path).lstrip("/")), None)
        return default if value is None else value

    def upstream_name(self, name: Any) -> NginxText:
        """``name`` for an upstream block, or "" with a warning when nginx cannot use it or has it already."""
        return self._claim(name, self._would_claim(str(name)))

    def try_claim(self, name: Any, expected: str) -> bool:
        """Claim ``name`` as ``upstream_name`` would, only if that gives ``expected`` (else change nothing)."""
        text = str(name)
        if expected:
            # It was claimed as this very text, so the name is valid: only whether it is taken now counts.
            lower = text.lower()
            if lower in self.upstreams:
                return False
            self.upstreams[lower] = text
            for recording in self.recordings:
                recording.claims.append((name, expected))
            return True
        if self._would_claim(text):
            return False
        self._claim(name, "")
        return True

    def _would_claim(self, text: str) -> str:
        """What ``upstream_name(text)`` returns now, without claiming it."""
        if not NGINX_NAME.fullmatch(text) or text.lower() in self.upstreams:
            return ""
        return text

    def _claim(self, name: Any, result: str) -> NginxText:
        text = str(name)
        for recording in self.recordings:
            recording.claims.append((name, result))
        if result:
            self.upstreams[text.lower()] = text
        elif not NGINX_NAME.fullmatch(text):
            self.warnings.append(
                f"Skipped upstream {_shown(text)}: nginx takes only letters, digits, '_' and '-' in "
                "dot-separated parts (at most 1024 characters) in an upstream name."
            )
        else:
            # nginx compares upstream names without case: a second one would make it refuse the file.
            first = self.upstreams[text.lower()]
            self.warnings.append(f"Skipped upstream {_shown(text)}: nginx already has it as {_shown(first)}.")
        return NginxText(result)


def _service_name(name: Any) -> tuple[str, str | None, str | None, str | None]:
    """A name from Consul (``s``, ``s.name``, ``i.name``) as it is; other text in consul-template's form."""
    if type(name) is ConsulName:  # the common case first: isinstance(name, Mapping) is slow
        return str(name), None, None, None
    if isinstance(name, Mapping) and isinstance(name.get("name"), ConsulName):
        name = name["name"]
    if isinstance(name, ConsulName):
        return str(name), None, None, None
    try:
        return parse_service_spec(str(name))
    except ValueError as exc:
        raise TemplateError(f"service(): {exc}.") from None


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 120 else repr(text[:120]) + f"... ({len(text)} characters)"


def run_recorded(reader: Reader, run: Callable[[], Any]) -> tuple[Any, tuple[Any, str] | None, bool]:
    """Run a cached macro's body, recording what it does: its text, its claim, whether it may be stored."""
    recording = Recording()
    reader.recordings.append(recording)
    try:
        text = run()
    finally:
        reader.recordings.pop()
    # One claim at most: a second could fail after the first is made, which no hit can undo.
    ok = not recording.data_reads and len(recording.claims) <= 1 and isinstance(text, str)
    return text, recording.claims[0] if recording.claims else None, ok
