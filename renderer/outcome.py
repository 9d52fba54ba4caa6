"""What an apply's result means for the sidecar: pure, so each case is one line of a test table.

``apply.apply_renders`` returns an ``Outcome`` (unchanged, reloaded, or pushed) or raises one of the tree's errors; ``judge`` maps
that to a ``Verdict`` the daemon carries out (metrics, the error it reports, readiness, a reload
retry). The daemon itself decides nothing about outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass

from plumbing.errors import (
    NginxCheckFailed,
    NginxError,
    NginxNotRunning,
    NginxReloadFailed,
    OutputError,
)

from .apply import Outcome

__all__ = ["KEPT", "Verdict", "judge"]

KEPT = "Kept the last good files"


@dataclass(frozen=True)
class Verdict:
    """What to do after an apply."""

    succeeded: bool = False  # clears the last error and what nginx refused last
    reloaded: bool = False  # nginx reloaded with new files (counted, logged)
    pushed: bool = False  # nginx took new files' peers at runtime, without a reload (dynamic mode)
    ready: bool = False  # checked files are in place: the sidecar is ready
    retry_reload: bool = False  # the files are in place but nginx was not told: retry the reload
    refused: bool = False  # nginx's check refused the files: leave out instances, or report it
    failure: str | None = None  # report the error, after this sentence
    note: str | None = None  # log the error at INFO, followed by this sentence
    counters: tuple[str, ...] = ()  # SidecarMetrics counters to increment


def judge(result: Outcome | NginxError | OutputError, *, once: bool) -> Verdict:
    """The verdict on one apply; ``once``: a one-shot command, which retries nothing."""
    if isinstance(result, Outcome):
        reloaded, pushed = result is Outcome.RELOADED, result is Outcome.PUSHED
        return Verdict(succeeded=True, reloaded=reloaded, pushed=pushed, ready=True)
    if isinstance(result, NginxNotRunning):
        # The files passed the check and wait for nginx: that is a success for `render` run before
        # nginx starts, and readiness for systemd (nginx is ordered after us).
        return Verdict(
            ready=True, retry_reload=not once, note="The checked files are in place for when it starts."
        )
    if isinstance(result, NginxReloadFailed):
        what = "New files are in place but nginx did not reload"
        return Verdict(
            retry_reload=not once,
            failure=what if once else f"{what}; retrying",
            counters=("reload_failures",),
        )
    if isinstance(result, NginxCheckFailed):
        # Not reported here: the caller may find instances to leave out and try again first.
        return Verdict(refused=True, counters=("rollbacks", "check_failures"))
    return Verdict(failure=KEPT, counters=("rollbacks",))
