"""Scenario 2's catalog: N services x 4 instances on external nodes, and flipping their checks.

Instances are registered through the catalog endpoint on four external nodes (``bench-1``..``bench-4``,
so the dev agent's anti-entropy leaves them alone); each has one check, flipped by re-registering it
with another status.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from .probe import Prober
from .progress import Steps
from .rig import ConsulAgent, put

__all__ = ["NODES", "SETTLE", "Flipper", "Plan", "Size", "all_answer", "body", "churn", "name"]

NODES = 4
SETTLE = 0.6


@dataclass(frozen=True)
class Plan:
    """How long each measurement of a size runs (the smoke test shrinks it)."""

    flips: int = 10  # flip-to-route rounds per size and system (each a remove and a recover)
    idle_seconds: float = 10.0  # 0: no idle window
    churn_rate: float = 10.0  # flips per second under churn
    churn_seconds: float = 10.0  # 0: no churn window

    @property
    def steps(self) -> int:
        """Progress steps per size and system."""
        return 4 + 2 * self.flips


def name(i: int) -> str:
    return f"svc{i:05d}"


def body(i: int, node: int, port: int, status: str = "passing", service: bool = True) -> dict[str, Any]:
    sid = f"{name(i)}-{node}"
    out: dict[str, Any] = {
        "Node": f"bench-{node}",
        "Address": "127.0.0.1",
        "Check": {"CheckID": f"c-{sid}", "Name": "bench", "Status": status, "ServiceID": sid},
    }
    if service:
        out["Service"] = {
            "ID": sid,
            "Service": name(i),
            "Tags": ["scale"],
            "Address": "127.0.0.1",
            "Port": port,
        }
    else:
        out["SkipNodeUpdate"] = True
    return out


class Flipper:
    """Flip instances' checks through the catalog; remembers which are down to restore them."""

    def __init__(self, consul: ConsulAgent, ports: list[int]) -> None:
        self.consul = consul
        self.ports = ports
        self.down: set[tuple[int, int]] = set()

    def set(self, i: int, node: int, status: str) -> None:
        put(self.consul, "/v1/catalog/register", body(i, node, self.ports[node - 1], status, service=False))
        if status == "passing":
            self.down.discard((i, node))
        else:
            self.down.add((i, node))

    def restore_all(self) -> None:
        for i, node in list(self.down):
            self.set(i, node, "passing")


@dataclass(frozen=True)
class Size:
    """One size under measurement: its catalog, the probed service, the flipper, progress and plan."""

    consul: ConsulAgent
    size: int
    probe: int
    flipper: Flipper
    steps: Steps
    plan: Plan


def all_answer(prober: Prober) -> bool:
    return {"b1", "b2", "b3", "b4"} <= prober.labels(time.monotonic() - 1.0)


def churn(flipper: Flipper, size: int, probe: int, rate: float, seconds: float) -> None:
    """Flip random instances (never the probed service) at ``rate`` per second for ``seconds``."""
    start = time.monotonic()
    for k in range(int(rate * seconds)):
        target = start + k / rate
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if flipper.down and (k % 2 or len(flipper.down) > 20):
            i, node = random.choice(sorted(flipper.down))
            flipper.set(i, node, "passing")
        else:
            i = random.choice([j for j in random.sample(range(size), min(size, 3)) if j != probe] or [0])
            flipper.set(i, random.randint(1, NODES), "critical")
