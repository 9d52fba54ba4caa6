"""``nginx.upstreams``' loop, run in Python: the blocks of the last render are reused without running
the ``upstream`` macro, without Jinja's per-service calls and without making the instance dicts.

Why: the macro's Jinja loop cost about 20 µs a service on every change (the loop, ``service()`` through
the sandbox, the block cache's hook and key), 44 ms at 2,000 services for one changed service. The loop
was::

    {% for s in services(tag=tag, dc=dc) %}
    {{ upstream(prefix ~ s.name, service(s.name, dc=dc, passing=passing), backup_warning=backup_warning,
                balance=balance, keepalive=keepalive) }}
    {% endfor %}

``upstream_blocks`` takes the same steps in the same order, so its text, warnings and dependencies are
that loop's:

* ``services()`` is the reader's, and each service's query is the one ``service()`` would fetch; every
  answer is read through the reader (``Reader.sources``), so the same dependencies are recorded, missing
  ones included;
* each block is the text of ``upstream(prefix ~ name, instances, **options)`` (Jinja's ``~`` joins the
  ``str`` of each side), followed by the newline the loop wrote;
* a block is reused when its service's instances are the very objects it was made from (the watcher
  keeps those of every service that did not change) and its ``upstream_name()`` claim gives what it
  gave then, claimed again (block_cache's rule, so duplicates are refused and warned about in the same
  order); otherwise the macro runs, recorded as block_cache records a run, and its text is kept only
  when block_cache would keep it.

The rows of one call are kept in the template's BlockCache, keyed by the call's arguments and by what
the macro reads outside them; a render keeps only the rows it used. A macro other than the library's
``upstream`` (a config folder's own nginx.j2) is called for every service, as the Jinja loop did.
"""

from __future__ import annotations

import functools
import operator
import weakref
from collections.abc import Callable, Hashable
from typing import Any

import jinja2.runtime
from jinja2.exceptions import SecurityError

from discovery.model import Instance, ServiceQuery, Snapshot

from .block_cache import BlockCache, Blocks, Unfrozen, freeze
from .escape import NginxText
from .reader import Reader, instance_list, run_recorded

__all__ = ["make_upstream_blocks"]


def _no_reader() -> None:
    return None


_NO_READER: Any = _no_reader  # called like a dead weak reference


class _Row:
    """One service's block: its query, the upstream's name, and the text made from ``source``."""

    __slots__ = ("claim", "name", "query", "source", "tag", "text")

    def __init__(self, query: ServiceQuery, tag: Any, name: str) -> None:
        self.query, self.tag, self.name = query, tag, name
        self.source: tuple[Instance, ...] | None = None  # what ``text`` was made from; None: run again
        self.text = ""  # the block and the loop's newline
        self.claim: tuple[Any, str] | None = None  # what the macro passed to upstream_name, and got


class _Plan:
    """The rows of one call for one ``services()`` list (the reader hands out the same list again)."""

    __slots__ = ("at", "claimed", "every", "listed", "queries", "reader", "rows", "seen", "texts")

    def __init__(self, reader: Reader, listed: list[dict[str, Any]], dc: Any, prefix: str, old: Any) -> None:
        # A service the catalog still lists keeps its row, and so its text.
        before: dict[str, _Row] = {row.name: row for row in old.rows} if isinstance(old, _Plan) else {}
        self.listed = listed
        self.rows: list[_Row] = []
        for s in listed:
            name = prefix + str(s["name"])
            row = before.pop(name, None)
            if row is None:
                row = _Row(*reader.service_query(s["name"], None, dc, None), name)
            self.rows.append(row)
        # The snapshot's own query objects (the watcher keeps them): a lookup then matches by identity,
        # without the dataclass's __eq__.
        canon = {q: q for q, _ in reader.snapshot.services}
        for row in self.rows:
            row.query = canon.get(row.query, row.query)
        self.queries = [row.query for row in self.rows]
        self.every = frozenset(self.queries)
        self.reader: weakref.ref[Reader] = _NO_READER  # the render that last used it
        self.at = {query: k for k, query in enumerate(self.queries)}
        self.texts: list[str] = []  # each row's text, as the last render wrote them
        # After a walk where every row was read, reused or kept, and claimed a name no other row did:
        # the snapshot it read and those names (lower-cased, as nginx compares them). Else None.
        self.seen: weakref.ref[Snapshot] | None = None
        self.claimed: dict[str, str] = {}


def make_upstream_blocks(blocks: Blocks) -> Callable[..., NginxText]:
    """The ``upstream_blocks`` global the library's ``upstreams`` macro calls."""

    def upstream_blocks(
        upstream: Any,
        tag: Any = None,
        dc: Any = None,
        prefix: Any = "",
        passing: Any = True,
        backup_warning: Any = False,
        balance: Any = None,
        keepalive: Any = None,
    ) -> NginxText:
        """Every service's ``upstream(prefix ~ name, service(name, dc, passing), **options)``, in order."""
        if not isinstance(upstream, jinja2.runtime.Macro):
            raise SecurityError("upstream_blocks() takes a macro (nginx.upstream) as its first argument")
        reader = blocks.current()
        if reader is None:
            raise SecurityError("upstream_blocks() can only be called while rendering")
        options = {"backup_warning": backup_warning, "balance": balance, "keepalive": keepalive}
        listed = reader.services(tag=tag, dc=dc)
        if not listed:
            return NginxText("")  # and prefix is not read, as the loop did not read it
        front, cache = str(prefix), reader.blocks
        key = (
            None
            if cache is None
            else _key(blocks, cache, upstream, (tag, dc, front, passing, *options.values()))
        )
        if cache is None or key is None:
            return _uncached(reader, listed, upstream, front, dc, passing, options)
        plan = _plan(reader, cache, key, listed, dc, front)
        texts = _reuse(reader, cache, plan, upstream, bool(passing), options)
        if texts is None:
            texts = _texts(reader, cache, plan, upstream, bool(passing), options)
        return NginxText("".join(texts))

    return upstream_blocks


def _uncached(
    reader: Reader, listed: Any, macro: Any, front: str, dc: Any, passing: Any, options: dict[str, Any]
) -> NginxText:
    """The loop as Jinja ran it: a service read, then its block, for every service."""
    texts = [
        macro(front + str(s["name"]), reader.service(s["name"], dc=dc, passing=passing), **options)
        for s in listed
    ]
    return NginxText("".join(f"{t}\n" for t in texts))


def _plan(reader: Reader, cache: BlockCache, key: Hashable, listed: Any, dc: Any, front: str) -> _Plan:
    """The rows this call keeps in the cache (made anew when the catalog's list changed)."""
    plan = cache.loops.get(key)
    while plan is not None and plan.reader() is reader:
        # The same call again in this render: its own rows, or both would run the macro every time
        # (the second finds every name taken, the first then finds them free).
        key = (key, "again")
        plan = cache.loops.get(key)
    if plan is None or plan.listed is not listed:
        plan = _Plan(reader, listed, dc, front, plan)
        cache.loops.put(key, plan)
    plan.reader = weakref.ref(reader)
    return plan


def _key(blocks: Blocks, cache: BlockCache, macro: Any, args: tuple[Any, ...]) -> Hashable | None:
    """A call's key: what the macro reads outside its arguments, then the arguments, each frozen."""
    head = blocks.head(macro, cache)
    if head is None:
        return None
    keep: list[object] = []
    try:
        key = (head, *[freeze(a, keep) for a in args])
    except Unfrozen:
        return None
    return None if keep else key  # snapshot parts as options: nothing would hold their id()


def _texts(
    reader: Reader, cache: BlockCache, plan: _Plan, macro: Any, passing: bool, options: dict[str, Any]
) -> list[str]:
    """The walk: each row's text, reused while its instances and its claim hold, else made by the macro."""
    out: list[str] = []
    plan.texts, plan.seen = out, None  # a walk cut short by an error leaves nothing to reuse
    for row, source in zip(plan.rows, reader.sources(plan.queries, plan.every), strict=True):
        _row(reader, cache, row, source, macro, passing, options)
        out.append(row.text)
    _remember(reader, plan)
    return out


def _row(
    reader: Reader,
    cache: BlockCache,
    row: _Row,
    source: tuple[Instance, ...],
    macro: Any,
    passing: bool,
    options: dict[str, Any],
) -> None:
    """One row of the walk: its text kept while its instances and its claim hold, else made again."""
    kept = row.source
    if (
        kept is not None
        and (kept is source or (len(kept) == len(source) and all(map(operator.is_, kept, source))))
        and (row.claim is None or reader.try_claim(*row.claim))
    ):
        cache.hits += 1
        return
    _run(reader, cache, row, source, macro, passing, options)


def _run(
    reader: Reader,
    cache: BlockCache,
    row: _Row,
    source: tuple[Instance, ...],
    macro: Any,
    passing: bool,
    options: dict[str, Any],
) -> None:
    """Make a row's text with the macro, recorded as block_cache records a run."""
    cache.misses += 1
    instances = instance_list(source, row.tag, passing)
    text, row.claim, ok = run_recorded(reader, functools.partial(macro, row.name, instances, **options))
    row.text = str(text) + "\n"
    row.source = source if ok else None


def _remember(reader: Reader, plan: _Plan) -> None:
    """After a walk: whether the next render may skip it (``_reuse``), and what it needs to."""
    plan.seen = None
    claims = [row.claim for row in plan.rows if row.source is not None]
    if len(claims) < len(plan.rows) or not all(c is not None and c[1] for c in claims):
        return  # a row made every time, or one whose name nginx cannot take: walk each time
    if not plan.every.isdisjoint(reader.missing):
        return  # a service not read yet: the walk records it as missing
    plan.claimed = {str(c[0]).lower(): str(c[0]) for c in claims if c is not None}
    if len(plan.claimed) == len(plan.rows):
        plan.seen = weakref.ref(reader.snapshot)


def _as_walked(reader: Reader, plan: _Plan, touched: list[int]) -> None:
    """What the walk's reads and claims of every row record, at once (the touched rows add their own)."""
    reader.read_all(plan.every)
    reader.upstreams.update(plan.claimed)
    first = plan.rows[0].claim if touched[:1] != [0] else None
    for recording in reader.recordings:
        # The outer macro's call (the library's ``upstreams``) reads data, so it is never stored: of
        # its claims only the first is ever looked at (run_recorded), and the walk's first is row 0's.
        recording.data_reads += len(plan.queries)
        if first is not None:
            recording.claims.append(first)


def _reuse(
    reader: Reader, cache: BlockCache, plan: _Plan, macro: Any, passing: bool, options: dict[str, Any]
) -> list[str] | None:
    """The walk's result without walking, when the snapshot's series says which services changed.

    The walk would reuse every other row (the same instances, the same claim granted again) and read
    every service; so the rows' names are claimed at once, every query is recorded as read, and only
    the changed rows go the walk's way. None when that cannot be known, and the caller walks:
    another series, a name claimed before this call.
    """
    seen = plan.seen() if plan.seen is not None else None
    known = reader.snapshot.changes_since(seen) if seen is not None else None
    if known is None or len(known) > 64 + len(plan.rows) // 8:
        return None  # many changed: the walk costs no more
    upstreams = reader.upstreams
    if any(name in plan.claimed for name in upstreams):
        return None  # claims in another order could give other names: walk
    touched = sorted(plan.at[q] for q in known if q in plan.at)
    if not all(reader.snapshot.has(plan.queries[k]) for k in touched):
        return None  # a service gone from the snapshot: the walk records it as missing
    _as_walked(reader, plan, touched)
    cache.hits += len(plan.rows) - len(touched)
    plan.seen = None  # until every touched row is made: an error in a macro leaves nothing to reuse
    for k in touched:
        row = plan.rows[k]
        source: tuple[Instance, ...] = reader.snapshot.get(row.query)  # type: ignore[assignment]
        claim = row.claim
        assert claim is not None
        del upstreams[str(claim[0]).lower()]  # free for its own row, as in the walk
        _row(reader, cache, row, source, macro, passing, options)
        plan.texts[k] = row.text
        if row.claim != claim or row.source is None:
            plan.seen = None  # not as before: the next render walks
            return plan.texts
    plan.seen = weakref.ref(reader.snapshot)
    return plan.texts
