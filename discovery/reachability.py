"""Which datacenters answer: the local agent ("Consul away") and each remote datacenter, apart.

A failed query of the local datacenter means the local agent (or its cluster) is away: nothing it says
can be trusted, so nothing is rendered. A failed query of a remote datacenter (``service("x@dc2")``)
means only that datacenter is away: its upstreams keep their last good instances, everything else keeps
following Consul. The one exception: when the agent itself did not answer (connection refused, timed
out), the agent is away whichever datacenter was asked.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

__all__ = ["FIRST_ANSWER_WAIT", "Outage", "blames_agent"]

# How long the first render waits for a remote datacenter that does not answer, before it renders
# that datacenter's services as having no instances (their upstreams answer 502) and says so.
FIRST_ANSWER_WAIT = 10.0


@dataclass(frozen=True)
class Outage:
    """A remote datacenter that does not answer: since when, and the last error (a sentence)."""

    dc: str
    since: float  # wall-clock seconds, for people
    started: float  # monotonic seconds, for the first-render bound
    error: str

    def sentence(self) -> str:
        """One sentence for /health, /status and logs, naming the datacenter and since when."""
        at = datetime.datetime.fromtimestamp(self.since, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"Datacenter {self.dc} has been unreachable since {at} ({self.error.rstrip('.')}); "
            "its upstreams keep their last good instances."
        )

    def as_dict(self) -> dict[str, str]:
        """The outage for /status."""
        at = datetime.datetime.fromtimestamp(self.since, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"since": at, "error": self.error}


def blames_agent(dc: str, agent_silent: bool) -> bool:
    """Whether a failed query of datacenter ``dc`` ("" = local) means the local agent is away.

    ``agent_silent``: the agent gave no HTTP answer at all (refused, reset, timed out). An HTTP error
    from a remote datacenter's query means the agent answered: only that datacenter is away.
    """
    return dc == "" or agent_silent
