"""The server-only plan: from the previous to the new texts of every destination, what changed. Pure.

A change is server-only when the texts, with the ``server`` lines of the upstreams in question taken
out, are equal: then nothing but peers moved, and that is all a push (dynamic mode) or a reload
without ``nginx -t`` (classic mode) needs to carry. Anything else is structural and takes the checked
reload path. Every doubt (a host name, a parameter we cannot vouch for, a block we cannot read)
counts as structural: the plan is only ever a shortcut, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .peers import Peer, Upstream
from .texts import ParsedFile, runtime_state

__all__ = ["Plan", "plan"]


@dataclass(frozen=True)
class Plan:
    """A server-only change: the upstreams whose peers changed, and the full runtime state after it."""

    changed: Mapping[str, tuple[Peer, ...]]
    state: Mapping[str, tuple[Peer, ...]]
    base: Mapping[str, tuple[Peer, ...]] | None = (
        None  # the old texts' state, ``changed`` applied gives ``state``
    )


def plan(
    old: Mapping[Path, ParsedFile | None], new: Mapping[Path, ParsedFile], *, hooked_only: bool
) -> Plan | None:
    """The server-only plan from the previous to the new texts of every destination, or None.

    ``hooked_only``: dynamic mode, where only upstreams with the balancer hook can change without a
    reload; classic mode looks at every upstream block (a reload, but no check). None when a file is
    new or gone, the skeletons differ, a changed upstream is not ``safe`` (``pushable`` in dynamic
    mode), or nothing a push or reload would carry changed.
    """
    if set(old) != set(new):
        return None
    changed: dict[str, tuple[Peer, ...]] = {}
    befores = []
    for path, after in new.items():
        before = old[path]
        if before is None:
            return None  # a first render: nothing proven yet
        befores.append(before)
        found = _changed(before, after, hooked_only=hooked_only)
        if found is None:
            return None
        changed.update((u.name, u.peers) for u in found)
    state = runtime_state(new.values())
    if not changed or state is None:
        # Nothing a push or a reload would carry (say, a parameter written another way) is rare
        # enough to take the checked path; two upstreams of one name are nginx's to refuse.
        return None
    return Plan(changed, state, runtime_state(befores) if hooked_only else None)


def _changed(before: ParsedFile, after: ParsedFile, *, hooked_only: bool) -> list[Upstream] | None:
    """The upstreams whose servers changed; None unless the skeletons are equal."""
    if before.text == after.text:
        return []
    touched = after.since.of(before) if after.since is not None else None
    if touched is not None:
        # Read against ``before``: its gaps are before's, and every other block is before's own.
        pairs = [(before.upstreams[k], after.upstreams[k]) for k in touched]
    elif before.gaps != after.gaps:
        return None  # an upstream added, removed or renamed, or anything outside the blocks changed
    else:
        pairs = list(zip(before.upstreams, after.upstreams, strict=True))
    found = []
    for a, b in pairs:
        if a is b or a.body == b.body:
            continue
        if a.shape(hooked_only=hooked_only) != b.shape(hooked_only=hooked_only):
            return None
        if a.servers != b.servers:
            found.append(b)
    ok = all(u.pushable if hooked_only else u.safe for u in found)
    return found if ok else None
