"""The scenarios of ``python -m bench`` by name: each measures into its own section of the results.

Every scenario but ``sidecars`` gets a fresh Consul dev agent of its own (``measured``), and its section
is stamped with the load average, the time and the duration. ``sidecars`` starts a cluster of its own
instead (3 servers, 2 client agents) and is not part of a plain ``python -m bench``: its figures are
quoted in docs/operations.md, not on the benchmarks page.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import checkcost, churn, companion, convergence, scale, sidecars
from .progress import Bars, Steps
from .rig import ConsulAgent

__all__ = ["DEFAULT", "SCENARIOS", "Run", "Scenario", "measured"]


@dataclass(frozen=True)
class Run:
    """One run of ``python -m bench``: its options, the systems kept, the results so far, where, the bars."""

    args: argparse.Namespace
    systems: tuple[str, ...]
    results: dict[str, Any]
    folder: Path
    bars: Bars


@contextmanager
def measured(
    table: dict[str, Any], key: str, consul_folder: Path
) -> Iterator[tuple[dict[str, Any], ConsulAgent]]:
    """A fresh section ``table[key]`` stamped with the time, the load average and the duration, and a
    fresh Consul dev agent of the scenario's own (in ``consul_folder``) to measure against."""
    section: dict[str, Any] = {}
    before = os.getloadavg()
    start = time.monotonic()
    consul_folder.mkdir(parents=True, exist_ok=True)
    consul = ConsulAgent(consul_folder)
    consul.start()
    try:
        yield section, consul
    finally:
        consul.stop()
    after = os.getloadavg()
    section["load"] = [f"{before[0]:.2f}", f"{after[0]:.2f}"]
    section["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section["took_s"] = time.monotonic() - start
    table[key] = section


def _convergence(run: Run) -> Steps:
    args = run.args
    total = sum(args.default_rounds if s == "traefik-default" else args.rounds for s in run.systems)
    steps = run.bars.scenario("convergence", total)
    with measured(run.results, "convergence", run.folder / "c-consul") as (section, consul):
        section.update(
            convergence.run(
                run.folder / "convergence",
                consul,
                rounds=args.rounds,
                default_rounds=args.default_rounds,
                systems=tuple(s for s in run.systems if s in convergence.SYSTEMS),
                steps=steps,
            )
        )
    return steps


def _scale(run: Run) -> Steps:
    """Every ``--sizes`` size in full, then every ``--file-sizes`` size with the sidecar's flips only."""
    sizes, file_sizes = run.args.sizes, run.args.file_sizes
    systems = tuple(s for s in run.systems if s in ("ours", "dynamic", "traefik-1s"))
    sidecars = tuple(s for s in systems if s in ("ours", "dynamic"))
    total = len(sizes) * (scale.FULL.steps * len(systems) + 3)
    steps = run.bars.scenario("scale", total + len(file_sizes) * (scale.FLIPS_ONLY.steps * len(sidecars) + 3))
    table = run.results.setdefault("scale", {})
    plans = [(size, systems, scale.FULL) for size in sizes]
    plans += [(size, sidecars, scale.FLIPS_ONLY) for size in file_sizes if sidecars]
    for size, kept, plan in plans:  # each size a section of its own: a rerun of one replaces only that one
        with measured(table, str(size), run.folder / f"s{size}-consul") as (section, consul):
            section.update(
                scale.run_size(
                    run.folder / f"scale{size}", consul, size, systems=kept, steps=steps, plan=plan
                )
            )
            section["flips_only"] = plan is scale.FLIPS_ONLY
    return steps


def _churn(run: Run) -> Steps:
    args = run.args
    systems = tuple(s for s in churn.SYSTEMS if s in run.systems)
    steps = run.bars.scenario("churn", args.churn_flips * len(systems))
    with measured(run.results, "churn", run.folder / "ch-consul") as (section, consul):
        section.update(
            churn.run(
                run.folder / "churn",
                consul,
                services=args.churn_services,
                flips=args.churn_flips,
                seconds=args.churn_seconds,
                systems=systems,
                steps=steps,
            )
        )
    return steps


def _companion(run: Run) -> Steps:
    count = run.args.containers
    steps = run.bars.scenario("companion", count + 2)
    with measured(run.results, "companion", run.folder / "co-consul") as (section, consul):
        section.update(
            companion.run(run.folder / "companion", consul, count=count, steps=steps, env=os.environ)
        )
    return steps


def _checkcost(run: Run) -> Steps:
    args = run.args
    steps = run.bars.scenario("checkcost", 8)
    with measured(run.results, "checkcost", run.folder / "cc-consul") as (section, consul):
        section.update(
            checkcost.run(
                run.folder / "checkcost",
                consul,
                count=args.check_containers,
                seconds=args.check_seconds,
                steps=steps,
                env=os.environ,
            )
        )
    return steps


def _sidecars(run: Run) -> Steps:
    args = run.args
    steps = run.bars.scenario("sidecars", len(args.sidecar_sizes))
    run.results["sidecars"] = sidecars.measure(
        run.folder / "sidecars",
        count=args.sidecars,
        sizes=args.sidecar_sizes,
        seconds=args.sidecar_seconds,
        log=run.bars.log,
        steps=steps,
    )
    return steps


@dataclass(frozen=True)
class Scenario:
    """A scenario's runner (it returns its progress bar) and whether a plain ``python -m bench`` runs it."""

    run: Callable[[Run], Steps]
    default: bool = True


SCENARIOS = {
    "convergence": Scenario(_convergence),
    "scale": Scenario(_scale),
    "churn": Scenario(_churn),
    "companion": Scenario(_companion),
    "checkcost": Scenario(_checkcost),
    "sidecars": Scenario(_sidecars, default=False),
}
DEFAULT = tuple(name for name, s in SCENARIOS.items() if s.default)
