"""The watcher's snapshots: equal to a full build after any changes, and saying what changed."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.model import (
    CatalogQuery,
    Dependency,
    Instance,
    KeyQuery,
    NodesQuery,
    PrefixQuery,
    ServiceQuery,
    ServiceSummary,
    Snapshot,
)
from discovery.publisher import HISTORY, Answers, Publisher

DEPS: list[Dependency] = [
    *(ServiceQuery(n) for n in ("b", "a", "c", "A")),
    ServiceQuery("a", dc="far"),
    CatalogQuery(),
    KeyQuery("k"),
    KeyQuery("j"),
    PrefixQuery("p/"),
    NodesQuery(),
]


def value(dep: Dependency, n: int) -> Any:
    if isinstance(dep, ServiceQuery):
        return tuple(Instance("node", f"{dep.name}-{k}", dep.name, "127.0.0.1", 1000 + k) for k in range(n))
    if isinstance(dep, CatalogQuery):
        return tuple(ServiceSummary(f"s{k}") for k in range(n))
    if isinstance(dep, KeyQuery):
        return None if n == 0 else f"v{n}"
    return tuple(str(k) for k in range(n))


def build(data: dict[Dependency, Any]) -> Snapshot:
    parts: dict[type, dict[Any, Any]] = {ServiceQuery: {}, CatalogQuery: {}, KeyQuery: {}}
    others = {}
    for dep, v in data.items():
        parts.get(type(dep), others)[dep] = v
    return Snapshot.build(parts[ServiceQuery], parts[CatalogQuery], parts[KeyQuery], others)


STEPS = st.lists(
    st.tuples(st.sampled_from(DEPS), st.one_of(st.none(), st.integers(0, 3)), st.booleans()), max_size=30
)


@settings(max_examples=200, deadline=None)
@given(steps=STEPS, answers=st.booleans())
def test_every_snapshot_equals_a_full_build_and_knows_what_changed(
    steps: list[tuple[Dependency, int | None, bool]], answers: bool
) -> None:
    """Either mapping: a plain one (every query walked) or the watcher's (what was set since)."""
    publisher = Publisher()
    data: dict[Dependency, Any] = Answers() if answers else {}
    seen = [publisher.publish(data)]
    assert seen[0] == Snapshot()
    for dep, n, publish in steps:
        if n is None:
            data.pop(dep, None)
        else:
            data[dep] = value(dep, n)  # a new object, maybe equal to the last
        if not publish:
            continue  # several changes, one snapshot
        made = publisher.publish(data)
        if made is None:
            assert build(data) == seen[-1]  # nothing changed
            continue
        assert made == build(data) and made != seen[-1]
        assert made.get(dep) == data[dep] if dep in data else not made.has(dep)
        seen.append(made)
    for old in seen:
        for new in seen:
            found = new.changes_since(old)
            if new.version < old.version:
                assert found is None
                continue
            assert found is not None
            truly = {d for d in DEPS if old.has(d) != new.has(d) or (old.has(d) and old.get(d) != new.get(d))}
            assert truly <= found  # changed and changed back may be in it too: never less
            if new.version - old.version == 1:
                assert found == truly


def test_an_equal_answer_keeps_the_old_object_and_publishes_nothing() -> None:
    publisher, dep = Publisher(), ServiceQuery("web")
    data: dict[Dependency, Any] = {dep: value(dep, 2)}
    first = publisher.publish(data)
    assert first is not None
    kept = data[dep]
    data[dep] = value(dep, 2)  # equal, not the same object
    assert publisher.publish(data) is None
    assert data[dep] is kept and first.get(dep) is kept


def test_only_a_series_knows_its_changes() -> None:
    one, two = Publisher(), Publisher()
    a = one.publish({KeyQuery("k"): "1"})
    b = two.publish({KeyQuery("k"): "1"})
    assert a is not None and b is not None and a == b
    assert a.changes_since(b) is None and a.changes_since(a) == frozenset()
    # A copy with other contents (what exclusion.without makes) is no part of the series.
    other = dataclasses.replace(a, keys=((KeyQuery("k"), "2"),))
    assert other.changes_since(a) is None and a.changes_since(other) is None
    assert Snapshot().changes_since(Snapshot()) is None


def test_history_is_bounded() -> None:
    publisher, dep = Publisher(), KeyQuery("k")
    first = publisher.publish({dep: "0"})
    assert first is not None
    last = first
    for n in range(1, HISTORY + 2):
        made = publisher.publish({dep: str(n)})
        assert made is not None
        last = made
    assert len(last.history) == HISTORY
    assert last.changes_since(first) is None  # further back than it remembers: compare instead
