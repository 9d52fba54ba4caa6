"""Carrying out a complete round: apply it, leave out instances nginx rejects, act on the verdict.

What the result of an apply *means* is ``outcome.judge``; whether to apply at all is
``round.decide_apply``. This holds what must outlive a round: the bytes nginx refused last, the
state the status endpoint reports, readiness, and the reload retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from discovery.model import Snapshot
from plumbing.errors import NginxCheckFailed, NginxError, OutputError
from plumbing.systemd import notify

from .apply import Context, Outcome, apply_renders
from .dynamic.pusher import Pusher
from .exclusion import Exclusion
from .left_out import LeftOut
from .metrics import SidecarMetrics
from .nginx import boot_clock
from .outcome import KEPT, Verdict, judge
from .reload_retry import ReloadRetry
from .round import Action, Files, decide_apply
from .runtime import Runtime
from .state import SidecarState
from .template import Rendered

__all__ = ["EXCLUSION_ROUNDS", "Applier", "files_of"]

log = logging.getLogger("renderer.daemon")  # split out of the daemon: its lines keep their logger name
REJECTED_LINES = (
    "Line numbers are those of the rejected render, not of the restored file; "
    "`upstreams render --dry` prints that render."
)
EXCLUSION_ROUNDS = 16  # checks per round that may each leave out instances nginx rejected


class Applier:
    """Applies complete rounds and keeps the sidecar's state up to date with what happened."""

    def __init__(
        self,
        *,
        state: SidecarState,
        metrics: SidecarMetrics,
        left_out: LeftOut,
        runtime: Callable[[], Runtime],
        task_group: Callable[[], asyncio.TaskGroup | None],
        env: Mapping[str, str],
    ) -> None:
        self.state = state
        self.metrics = metrics
        self.left_out = left_out
        self._runtime = runtime
        self.task_group = task_group  # where reload retries run (None: a one-shot command)
        self.env = env
        self.once = False  # a one-shot command: retry nothing, log nothing (it prints its failures)
        self.dry_output: list[str] | None = None  # a dry run: the texts, instead of applying them
        self.refused: Files = ()  # what nginx's check last refused
        self.retry = ReloadRetry(lambda: runtime().nginx, metrics, self.live_after_retry)
        # One for the sidecar's life, so generations only move forward; in use while dynamic is on.
        self.pusher = Pusher(runtime().config.nginx.dynamic, metrics)
        self._context: tuple[Runtime, Context] | None = None

    def context(self, rt: Runtime) -> Context:
        """What applies under this runtime remember; a new runtime (SIGHUP) checks its first change again."""
        if self._context is None or self._context[0] is not rt:
            dynamic = rt.config.nginx.dynamic
            self.pusher.reconfigure(dynamic)
            if not dynamic.enabled:
                self.pusher.expected = None  # nothing to keep in step any more
            parsed = self._context[1].parsed if self._context else {}
            pusher = self.pusher if dynamic.enabled else None
            self._context = (rt, Context(check=rt.config.nginx.check, pusher=pusher, parsed=parsed))
            if pusher is not None and pusher.expected is not None:
                pusher.wake()  # SIGHUP: read back what nginx holds now, and repair it
        return self._context[1]

    def dynamic_status(self) -> dict[str, object]:
        """The ``dynamic`` part of /status: the mode, the last generation and push."""
        if not self._runtime().config.nginx.dynamic.enabled:
            return {"mode": "classic", "generation": None, "last_push": None}
        return self.pusher.status()

    async def close(self) -> None:
        """Finish the state file a push left to write, and close the connection to nginx's update endpoint."""
        if self._context is not None:
            await self._context[1].settled()
        await self.pusher.close()

    async def apply(self, rt: Runtime, renders: list[Rendered], snapshot: Snapshot) -> None:
        """Apply a complete round; while nginx rejects lines written from instances, leave those out and try again."""
        for attempt in range(EXCLUSION_ROUNDS + 1):
            # The last attempt may not exclude more: its refusal is reported like any other.
            found = await self._apply_once(rt, renders, snapshot, may_exclude=attempt < EXCLUSION_ROUNDS)
            if not found:
                break
            self.left_out.add(found)
            renders, _ = rt.templates.render_all(self.left_out.visible(snapshot))
        if self.once and self.dry_output is None and self.context(rt).pusher is not None:
            await self.context(rt).settled()  # the state file too, before the command exits
            await self.pusher.settle()  # a one-shot command: runtime state in step before it exits

    async def _apply_once(
        self, rt: Runtime, renders: list[Rendered], snapshot: Snapshot, *, may_exclude: bool
    ) -> tuple[Exclusion, ...]:
        """Apply the renders; the instances to leave out when nginx rejected a line written from them."""
        decision = decide_apply(files_of(rt, renders), self.refused, dry=self.dry_output is not None)
        if decision.action is Action.PRINT:
            assert self.dry_output is not None
            self.dry_output.extend(_dry_text(r, len(renders)) for r in renders)
            return ()
        if decision.action is Action.SKIP_REFUSED:
            log.debug("Render unchanged since nginx refused it; not checking it again.")
            return ()
        verdict, error = await self._write_check_reload(rt, renders)
        if not verdict.refused or error is None:
            return ()
        found = self.left_out.find(str(error), rt.destinations(renders), snapshot) if may_exclude else ()
        if found:
            return found  # not an error yet: the caller renders again without them
        self.refused = decision.files
        # nginx names lines of the rejected files, which are already restored: say which text they are.
        self.fail(NginxCheckFailed(f"{error} {REJECTED_LINES}"), KEPT)
        return ()

    async def _write_check_reload(
        self, rt: Runtime, renders: list[Rendered]
    ) -> tuple[Verdict, Exception | None]:
        """Apply the texts and carry out the verdict on the result (and the error, if one was raised)."""
        pairs = [(t, r.text) for t, r in rt.files(renders)]
        error: NginxError | OutputError | None = None
        try:
            result: Outcome | NginxError | OutputError = await apply_renders(
                pairs, rt.nginx, self.context(rt)
            )
        except (NginxError, OutputError) as exc:
            result = error = exc
        finally:
            self.metrics.renders.inc()
        verdict = judge(result, once=self.once)
        self._carry_out(verdict, error)
        return verdict, error

    def _carry_out(self, verdict: Verdict, error: Exception | None) -> None:
        for counter in verdict.counters:
            getattr(self.metrics, counter).inc()
        if verdict.note is not None:
            log.info("%s %s", error, verdict.note)
        if verdict.failure is not None and error is not None:
            self.fail(error, verdict.failure)
        if verdict.succeeded:
            self.refused = ()
            # Unchanged files while a reload is still being retried: nginx has not loaded them yet,
            # so the reload's failure stands until the retry succeeds.
            if verdict.reloaded or not self.retry.pending:
                self.state.last_error = None
        if verdict.reloaded:
            self.reloaded()
        if verdict.pushed:
            self.metrics.last_apply.set_to_current_time()  # live without a reload: the push logged it
        if verdict.ready:
            self.mark_ready()
        if verdict.retry_reload:
            self.retry.schedule(self.task_group(), boot_clock())

    def live_after_retry(self, reloaded: bool) -> None:
        if reloaded:
            self.reloaded()
        if self.pusher.awaiting is not None:
            self.pusher.reloaded(self.pusher.awaiting)  # nginx runs them now: wait for it to show again
        self.state.last_error = None
        self.mark_ready()

    def reloaded(self) -> None:
        self.state.applied += 1
        self.metrics.reloads.inc()
        self.metrics.last_apply.set_to_current_time()
        log.info("nginx reloaded.")

    def mark_ready(self) -> None:
        if not self.state.ready:
            self.state.ready = True
            self.metrics.ready.set(1)
            notify(self.env, "READY=1\nSTATUS=The first complete render is live.")

    def fail(self, exc: Exception, what: str) -> None:
        self.state.fail(exc, what)
        if not self.once:
            log.error("%s: %s", what, exc)  # a one-shot command prints its failures itself, once


def files_of(rt: Runtime, renders: Iterable[Rendered]) -> Files:
    """The (destination, text) of every file these renders write."""
    return tuple(sorted(((t.destination, r.text) for t, r in rt.files(renders)), key=_destination))


def _destination(file: tuple[Path, str]) -> Path:
    return file[0]


def _dry_text(render: Rendered, count: int) -> str:
    # Several templates: say which text is which; one template: exactly its text.
    return render.text if count == 1 else f"# --- {render.source} ---\n{render.text}"
