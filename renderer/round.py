"""One render round, decided by pure functions: what the templates read, and what to do with their texts.

A round runs in one direction, and each step only reads what the step before produced:

1. **snapshot**: the watcher's newest whole Snapshot (minus the instances left out, see ``left_out``).
2. **render**: ``render_round`` renders every template against it, giving a ``RenderSet``: the texts,
   the template errors, what each template read and what it read that the snapshot does not hold yet.
   The TemplateSet reuses what did not change (a template none of whose data changed, a block of the
   macro library called as before); the texts are those of a full render, so nothing here knows.
3. **needs**: ``needs`` turns what each template read into the set of dependencies to watch. The
   daemon hands that set to the watcher *before* the decision, as the round's only output upstream;
   the decision never looks at it, and nothing rendered later in the round changes it.
   Why from a render and not from the template's source: a template may loop over ``services()`` and
   read each service it finds, so what it reads is a function of (template, snapshot). Rendered
   against the snapshot that already holds the catalog, it names the services it will read; the
   watcher fetches them and publishes a new snapshot, which starts the next round. The first round's
   needs come from a render against the empty snapshot, before any query runs.
4. **decide**: ``decide_round`` turns (token state, missing data, the files, what nginx refused
   last, dry or not) into a frozen ``Decision``: wait for the token, wait for data, print (dry),
   skip (nginx refused these exact bytes), or apply.
5. **apply**: the daemon writes, checks and reloads (``apply``), and ``outcome.judge`` says what
   the result means.

Never a half-empty render: a render that read a dependency the snapshot does not hold is missing
data, and missing data is always "wait" (step 4), however the rest of the round looks.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discovery.model import Dependency, ServiceQuery, Snapshot
from plumbing.errors import TemplateError

from .template import Rendered, TemplateSet

__all__ = [
    "Action",
    "Decision",
    "RenderSet",
    "RoundInput",
    "changed_services",
    "decide_apply",
    "decide_round",
    "needs",
    "render_round",
    "watched",
]

# (destination, text) of every file a round would write, by destination. A tuple, not a set: a set
# hashes each text (0.35 ms for 700 KB at 5,000 upstreams, every round) only to compare it.
Files = tuple[tuple[Path, str], ...]


class Action(enum.Enum):
    """What a round does."""

    WAIT_TOKEN = "wait for a usable ACL token"
    WAIT_DATA = "wait for every dependency to answer once"
    PRINT = "print the texts (dry run)"
    SKIP_REFUSED = "skip: nginx refused exactly these bytes"
    APPLY = "write, check and reload"


@dataclass(frozen=True)
class RenderSet:
    """Every template rendered against one snapshot."""

    renders: tuple[Rendered, ...]
    errors: tuple[TemplateError, ...]
    missing: frozenset[Dependency]


@dataclass(frozen=True)
class RoundInput:
    """Everything a round's decision depends on."""

    token_checked: bool  # the ACL token has been found usable once
    token_problem: str | None  # a sentence while the token cannot read services
    missing: frozenset[Dependency]
    files: Files
    refused: Files  # the files nginx's check last refused (empty after a success or a reason to retry)
    dry: bool = False


@dataclass(frozen=True)
class Decision:
    """What to do with a round, and the files it is about."""

    action: Action
    files: Files = ()
    missing: frozenset[Dependency] = frozenset()

    @property
    def complete(self) -> bool:
        """Whether the round rendered everything (its failures are then reported)."""
        return self.action in (Action.PRINT, Action.SKIP_REFUSED, Action.APPLY)


def render_round(templates: TemplateSet, snapshot: Snapshot) -> RenderSet:
    """Step 2: render every template; errors are collected, so one bad template spares the others."""
    renders, errors = templates.render_all(snapshot)
    missing = frozenset().union(*(r.missing for r in renders))
    return RenderSet(tuple(renders), tuple(errors), missing)


def needs(
    previous: Mapping[Path, frozenset[Dependency]], renders: Iterable[Rendered]
) -> dict[Path, frozenset[Dependency]]:
    """Step 3: what each template reads, from its newest render.

    A template that failed to render this time keeps what it read before, so its data stays watched
    and its next good render is not delayed by fetching everything again.
    """
    return {**previous, **{r.source: r.dependencies for r in renders}}


def watched(per_template: Mapping[Path, frozenset[Dependency]]) -> frozenset[Dependency]:
    """Every dependency some template reads."""
    return frozenset().union(*per_template.values())


def decide_round(given: RoundInput) -> Decision:
    """Step 4: what to do with this round."""
    if not given.token_checked or given.token_problem is not None:
        # An unreadable catalog looks like empty upstreams: never render it.
        return Decision(Action.WAIT_TOKEN)
    if given.missing:
        return Decision(Action.WAIT_DATA, missing=given.missing)
    return decide_apply(given.files, given.refused, dry=given.dry)


def decide_apply(files: Files, refused: Files, *, dry: bool = False) -> Decision:
    """For complete renders: print them, apply them, or skip bytes nginx refused already."""
    if dry:
        return Decision(Action.PRINT, files)
    if files == refused:
        # Writing them again would only put a known-bad file on disk for another check.
        return Decision(Action.SKIP_REFUSED, files)
    return Decision(Action.APPLY, files)


def changed_services(old: Snapshot, new: Snapshot) -> list[tuple[ServiceQuery, int, int]]:
    """For the log: each service whose instances changed, with its instance and passing counts."""
    known = new.changes_since(old)
    if known is not None:
        # The watcher's series says which: no need to compare every service of the catalog.
        changed = sorted(q for q in known if isinstance(q, ServiceQuery) and new.has(q))
        pairs: list[tuple[ServiceQuery, Any]] = [
            (q, new.get(q)) for q in changed if not old.has(q) or old.get(q) != new.get(q)
        ]
    else:
        before = dict(old.services)
        pairs = [(q, instances) for q, instances in new.services if before.get(q) != instances]
    return [(q, len(v), sum(1 for i in v if i.status == "passing")) for q, v in pairs]
