"""Which way a changed render goes to nginx: pushed at runtime, reloaded without a check, or checked and
reloaded. Pure: the inputs are the parsed texts before and after, and three facts about the sidecar.

| the change                                     | dynamic on                | dynamic off                   |
|------------------------------------------------|---------------------------|-------------------------------|
| servers of hooked upstreams only               | push, no check, no reload | reload, no check (structural) |
| servers only, some outside hooked upstreams    | reload, no check          | reload, no check (structural) |
| anything else, or a first render               | check, reload             | check, reload                 |

``check = "always"`` puts the check back before every reload; a push never needs it (no reload, and
``nginx -t`` never runs Lua code: the sidecar validates what it pushes itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .document import PeerState
from .plan import plan
from .texts import ParsedFile, runtime_state

__all__ = ["Route", "route"]


@dataclass(frozen=True)
class Route:
    """How to apply one changed render."""

    push: PeerState | None  # the changed upstreams to push (a server-only change, dynamic mode)
    check: bool  # run the check command before the reload
    state: PeerState | None  # the new files' full runtime state (dynamic mode; None: not one to write)
    base: PeerState | None = None  # with a push: the old files' state, which ``push`` updates to ``state``


def route(
    old: Mapping[Path, ParsedFile | None],
    new: Mapping[Path, ParsedFile],
    *,
    dynamic: bool,
    check_always: bool,
    proven: bool,
) -> Route:
    """The way for this change; ``proven``: a check has passed since the config was (re)loaded."""
    state = runtime_state(new.values()) if dynamic else None
    if not proven:
        return Route(None, True, state)  # first renders are checked: nothing on disk is known good yet
    if dynamic:
        server_only = plan(old, new, hooked_only=True)
        if server_only is not None:
            return Route(server_only.changed, False, server_only.state, server_only.base)
    if check_always:
        return Route(None, True, state)
    return Route(None, plan(old, new, hooked_only=False) is None, state)
