"""The Watcher's side of reachability: what a failed or an answered query changes.

A failure of the local datacenter (or a silent agent) means "Consul away": ``reachable`` turns False
and nothing is rendered. A remote datacenter's failure puts it in ``away``; one that has never answered
``FIRST_ANSWER_WAIT`` seconds later has its missing dependencies stood in for by empty data. When either
answers again, its watched services are fetched again and the consumer is woken.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import TYPE_CHECKING

from plumbing.errors import ConsulError

from .client import agent_silent
from .model import KeyQuery
from .reachability import FIRST_ANSWER_WAIT, Outage, blames_agent

if TYPE_CHECKING:
    from .watch import Watcher

__all__ = ["Outages"]

log = logging.getLogger("discovery.watch")  # split out of the watcher: its lines keep their logger name


class Outages:
    """Follows which datacenters answer, on behalf of one Watcher (whose attributes it keeps current)."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def lost(self, dc: str, exc: ConsulError) -> None:
        """A query of datacenter ``dc`` ("" = local) failed with ``exc``."""
        w = self.watcher
        w.metrics.consul_errors.inc()
        if not blames_agent(dc, agent_silent(exc)):
            self._remote_lost(dc, exc)
            return
        w.metrics.consul_up.set(0)
        if w.reachable is not False:
            log.warning("Lost Consul: %s Keeping the last good files live.", exc)
        w.reachable, w.last_error = False, str(exc)

    def reached(self, dc: str) -> None:
        """A query of datacenter ``dc`` ("" = local) answered."""
        w = self.watcher
        if dc and dc in w.away:
            log.info("Datacenter %s is reachable again; resynchronising its services.", dc)
            del w.away[dc]
            w._mark_dirty(dc, None)
            self._publish_again()
        if dc and w.reachable is not False:
            return  # a remote answer proves the agent answers, but the local queries say if all is well
        w.metrics.consul_up.set(1)
        if w.reachable is False:
            log.info("Consul is reachable again; resynchronising.")
            w.reconnected_at = time.monotonic()
            for name in w._dcs:
                w._mark_dirty(name, None)
            self._publish_again()
        w.reachable, w.last_error = True, None

    def _publish_again(self) -> None:
        # Wake the consumer even if nothing changed: it skipped renders while Consul was away.
        updates = self.watcher.updates
        if updates.value is not None:
            updates.publish(updates.value)

    def _remote_lost(self, dc: str, exc: ConsulError) -> None:
        away = self.watcher.away
        outage = away.get(dc)
        if outage is None:
            log.warning(
                "Datacenter %s is unreachable: %s Its upstreams keep their last good instances.", dc, exc
            )
            away[dc] = Outage(dc, time.time(), time.monotonic(), str(exc))
            asyncio.get_running_loop().call_later(FIRST_ANSWER_WAIT, self.stand_in, dc)
        else:
            away[dc] = dataclasses.replace(outage, error=str(exc))

    def stand_in(self, dc: str) -> None:
        """First-render policy: what a datacenter away this long never answered is rendered empty."""
        w = self.watcher
        outage = w.away.get(dc)
        # A timer of an earlier outage finds a newer one, not yet that old: its own timer will come.
        if outage is None or time.monotonic() - outage.started < FIRST_ANSWER_WAIT - 0.01:
            return
        missing = [d for d in w.wanted if d.dc == dc and d not in w._data]
        if not missing:
            return
        log.warning(
            "Datacenter %s has not answered for %gs: rendering %s with no instances (502) until it does.",
            dc,
            FIRST_ANSWER_WAIT,
            ", ".join(sorted(map(str, missing))),
        )
        for dep in missing:
            w._data[dep] = None if isinstance(dep, KeyQuery) else ()
            w.stand_ins.add(dep)
        w._publish()
