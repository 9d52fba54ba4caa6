"""Scenario 2's dynamic floor at one size: peers pushed straight to nginx's Lua endpoint, no sidecar.

The analogue of scale_floor.py's hand-edited file and SIGHUP: the probed service's upstream is pushed
without one server, then with it again (``full: false``), timed from the push to the last / first answer
of that server through the front server; and the whole catalog is pushed at once (``full: true``), timed
as the endpoint's answer, with the body's size. Peers come from the file the dynamic sidecar rendered.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .dynamic_rig import LuaNginx, peers_of, push
from .probe import Prober
from .rig import wait_until
from .scale_catalog import NODES, SETTLE, Size, all_answer, name

__all__ = ["push_floor"]

FULL_PUSHES = 5


def push_floor(at: Size, lua: LuaNginx) -> dict[str, Any]:
    """Push -> removed / added for the probed upstream, and full pushes of every upstream, at this size."""
    at.steps.note(f"{at.size}: push floor")
    peers = peers_of(lua.server.upstreams.read_text())
    lua.generation = int(lua.state().get("generation", 0))  # the sidecar's last: ours must pass it
    upstream = f"s_{name(at.probe)}"
    out: dict[str, Any] = {"push_remove": [], "push_add": [], "push_call": []}
    with Prober(lua.server.port, (name(at.probe),), max_seconds=300) as prober:
        wait_until(lambda: all_answer(prober), timeout=30, what="all four answering")
        for k in range(at.plan.flips):
            node = k % NODES + 1
            gone = at.flipper.ports[node - 1]
            t0 = time.monotonic()
            push(lua, {upstream: [p for p in peers[upstream] if p["port"] != gone]})
            out["push_call"].append(time.monotonic() - t0)
            out["push_remove"].append(prober.wait_gone(f"b{node}", t0, settle=SETTLE, timeout=20))
            t1 = time.monotonic()
            push(lua, {upstream: peers[upstream]})
            out["push_add"].append(prober.wait_back(f"b{node}", t1, timeout=20))
            wait_until(lambda: all_answer(prober), timeout=20, what="all four back")
    out["full_push"] = []
    for _ in range(FULL_PUSHES):
        t = time.monotonic()
        push(lua, peers, full=True)
        out["full_push"].append(time.monotonic() - t)
    body = {"generation": lua.generation, "full": True, "upstreams": peers}
    out.update(full_push_kb=len(json.dumps(body)) / 1024, upstreams=len(peers))
    at.steps.advance()
    return out
