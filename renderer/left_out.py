"""The sidecar's record of instances left out because nginx rejected them: state, logs, metrics.

The deciding is in ``exclusion`` (pure); this keeps the current exclusions between rounds and says
what happens to them, once each: a WARNING when an instance is left out, INFO when it comes back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from discovery.model import Snapshot

from .exclusion import Exclusion, find_exclusions, parse_check_error, still_registered, without
from .metrics import SidecarMetrics
from .template import Rendered

__all__ = ["LeftOut"]

log = logging.getLogger(__name__)


class LeftOut:
    """The instances left out of rendering right now."""

    def __init__(self, metrics: SidecarMetrics) -> None:
        self.metrics = metrics
        self.exclusions: tuple[Exclusion, ...] = ()

    def visible(self, snapshot: Snapshot) -> Snapshot:
        """What the templates see: the snapshot without the instances left out."""
        return without(snapshot, (e.instance for e in self.exclusions))

    def find(
        self, message: str, files: Sequence[tuple[Path, Rendered]], snapshot: Snapshot
    ) -> tuple[Exclusion, ...]:
        """The instances nginx's check output points at, when it names a line of one of ``files``."""
        problem = parse_check_error(message)
        if problem is None:
            return ()
        target = os.path.realpath(problem.file)  # nginx names the path as its include resolved it
        for destination, render in files:
            if os.path.realpath(destination) == target:
                return find_exclusions(problem, render.text, render.dependencies, self.visible(snapshot))
        return ()

    def add(self, found: tuple[Exclusion, ...]) -> None:
        """Leave these out from now on; one warning each."""
        for e in found:
            log.warning(
                "Left out instance %s of service %s (node %s): nginx rejected its line %s:%d: %s. "
                "The rest is applied; the instance comes back when its registration changes.",
                e.instance.id,
                e.instance.name,
                e.instance.node,
                e.file,
                e.line,
                e.reason,
            )
        self.metrics.exclusions.inc(len(found))
        self._set(self.exclusions + found)

    def refresh(self, snapshot: Snapshot) -> None:
        """Bring back the instances whose registration changed or that left."""
        kept = still_registered(self.exclusions, snapshot)
        for e in self.exclusions:
            if e not in kept:
                log.info(
                    "Instance %s of service %s changed or left; no longer leaving it out.",
                    e.instance.id,
                    e.instance.name,
                )
        self._set(kept)

    def clear(self) -> None:
        """Try every instance again (template edit, SIGHUP)."""
        if self.exclusions:
            log.info("Rendering the %d instance(s) left out again.", len(self.exclusions))
        self._set(())

    def describe(self) -> list[dict[str, Any]]:
        """The exclusions as the status document lists them."""
        return [e.describe() for e in self.exclusions]

    def _set(self, exclusions: tuple[Exclusion, ...]) -> None:
        self.exclusions = exclusions
        self.metrics.excluded.set(len(exclusions))
