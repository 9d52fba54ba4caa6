"""Runtime state in step with the files: generations, pushes, the re-sync after a reload, drift repair.

The files (and the state file written with them) are the truth; the pusher only ever carries what they
say to nginx's update endpoint, and reads back what nginx holds to repair any difference:

* ``stage`` gives each written state file a new generation (``max(last + 1, epoch ms)``);
* ``push`` sends the changed upstreams of a server-only change (the caller falls back to a reload
  when it raises);
* after a reload, the new workers load the state file at start; ``sync`` waits until nginx holds that
  generation (proof the reload took: a failed reload starts no workers, and its runtime state must stay
  as it is), then compares and repairs. It runs again every ``DRIFT_PERIOD``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from plumbing.errors import DynamicPushFailed, DynamicRefused, DynamicUpdateInvalid, OutputError

from ..config import DynamicConfig
from ..files import write_atomic
from ..metrics import SidecarMetrics
from .client import EndpointClient
from .document import Encoder, PeerState, State, next_generation
from .drift import answers, held_already, same_peers
from .state_file import generation_in, head_generation, holds

__all__ = ["CONFIRM_WAIT", "DRIFT_PERIOD", "Pusher", "fallback_reason"]

log = logging.getLogger(__name__)
# Drift (an nginx restarted with an old state file, a hand-made POST, a push lost in a crash) is found
# within half a minute; a GET of 5,000 upstreams costs ~30 ms of nginx's time, so this is cheap.
DRIFT_PERIOD = 30.0
# After a reload the new workers load the state file at start; a reload that has not shown within this
# long most likely failed (nginx keeps the old workers, and their runtime state stays as it is).
CONFIRM_WAIT = 10.0
CONFIRM_POLL = 0.05
NO_ROOM = 507  # the endpoint's answer when the shared dict cannot hold the state


def fallback_reason(exc: DynamicPushFailed) -> str:
    """The metric label for a push that failed."""
    if isinstance(exc, DynamicUpdateInvalid):
        return "invalid"
    return "refused" if isinstance(exc, DynamicRefused) else "unreachable"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Pusher:
    """One per sidecar: survives SIGHUP (``reconfigure``), so generations keep moving forward."""

    def __init__(
        self, config: DynamicConfig, metrics: SidecarMetrics, *, now_ms: Callable[[], int] = _now_ms
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.now_ms = now_ms
        self._client: EndpointClient | None = None
        self.encoder = Encoder()
        self._retired: list[EndpointClient] = []  # clients of an endpoint SIGHUP replaced
        self.generation = generation_in(config)  # the newest one written or pushed
        self.expected: PeerState | None = None  # what the live files say runtime state is
        self.awaiting: int | None = None  # the generation a reload's new workers load at start
        self._awaiting_since = 0.0
        self._warned = False
        self.last_push: float | None = None
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # pushes and repairs, one at a time
        self._pushes = 0  # pushes so far: a sync that read nginx's state during one reads again

    def reconfigure(self, config: DynamicConfig) -> None:
        """SIGHUP: another endpoint or state file; the generation stays."""
        if config != self.config:
            self.config = config
            if self._client is not None:
                self._retired.append(self._client)  # closed with the rest, at the end
            self._client = None

    async def close(self) -> None:
        """Close the connections to the endpoint."""
        clients = [*self._retired, *([self._client] if self._client else [])]
        self._client, self._retired = None, []
        for client in clients:
            await client.close()

    def _endpoint(self) -> EndpointClient:
        if self._client is None:
            self._client = EndpointClient(self.config)  # in the running loop, as aiohttp wants
        return self._client

    # Writing ---------------------------------------------------------------------------------------

    def stage(
        self, state: PeerState, base: PeerState | None = None, changed: PeerState | None = None
    ) -> tuple[int, bytes]:
        """A new generation and the state file's bytes for ``state`` (``base`` updated with ``changed``,
        when known); DynamicUpdateInvalid if it breaks a cap."""
        generation, body = self.stage_lazily(state, base, changed)
        return generation, body()

    def stage_lazily(
        self, state: PeerState, base: PeerState | None = None, changed: PeerState | None = None
    ) -> tuple[int, Callable[[], bytes]]:
        """``stage``, checked now, its bytes made when called (after a push, off the way to routing)."""
        generation = next_generation(self.generation, self.now_ms())
        body = self.encoder.prepare(generation, state, full=True, base=base, changed=changed)
        self.generation = generation
        return generation, body

    def commit(self, state: PeerState, generation: int) -> None:
        """The files and the state file of ``generation`` are live."""
        self.expected = state
        self.metrics.dynamic_generation.set(generation)

    async def adopt(self, state: PeerState) -> None:
        """At start with unchanged files: make sure the state file says what they say, then sync."""
        # Megabytes at scale: off the loop. It leaves the encoder holding the state's fragments, which
        # each drift check compares nginx's answer with (~0.3 s at 5,000 upstreams to make anew).
        if not await asyncio.to_thread(holds, self.config, self.encoder, state):
            try:
                _, body = self.stage(state)
                write_atomic(self.config.state_file, body, 0o644, durable=False)  # see apply's state file
            except (DynamicUpdateInvalid, OutputError) as exc:
                log.warning("Runtime state not written: %s", exc)
        self.expected = state
        self._wake.set()

    # Pushing ---------------------------------------------------------------------------------------

    async def push(self, changed: PeerState, state: PeerState, generation: int) -> None:
        """Push the changed upstreams as ``generation``; raise DynamicPushFailed for the reload path."""
        # One writer at a time: a repair encoded before this push must not land after it.
        async with self._lock:
            self._pushes += 1
            await self._push(changed, state, generation)

    async def _push(self, changed: PeerState, state: PeerState, generation: int) -> None:
        if self.awaiting is not None:
            # A reload's workers have not shown its state file: nginx may hold the state before it (or none),
            # which a delta would only patch, and the workers then refuse the older file. Whole: no repair.
            await self._post(generation, state, full=True)
            return
        try:
            await self._post(generation, changed, full=False)
        except DynamicRefused as exc:
            if exc.current is None:
                raise
            # nginx holds a newer generation (a clock behind another pusher's): move past it, in full.
            self.generation = max(self.generation, exc.current)
            self.generation = next_generation(self.generation, self.now_ms())
            await self._post(self.generation, state, full=True)

    async def _post(self, generation: int, upstreams: PeerState, *, full: bool) -> None:
        body = self.encoder.encode(generation, upstreams, full=full)
        try:
            self.generation = max(self.generation, await self._endpoint().push(body))
        except DynamicPushFailed as exc:
            if not (isinstance(exc, DynamicRefused) and held_already(exc, generation)):
                self.last_error = str(exc)
                if isinstance(exc, DynamicRefused) and exc.status == NO_ROOM:
                    await self._clear(exc)
                raise
        self.last_push = time.time()
        self.last_error = None
        self.metrics.dynamic_pushes.labels(kind="full" if full else "changed").inc()

    async def _clear(self, exc: DynamicRefused) -> None:
        """nginx's shared dict has no room for the state: empty it, so every file's servers route.

        Left as it is, the dict would keep routing by peers the files no longer say; empty, each
        upstream gets no peer from the balancer and nginx's own round robin over the file applies.
        """
        self.generation = next_generation(max(self.generation, exc.current or 0), self.now_ms())
        log.warning(
            "%s Emptying runtime state so nginx routes by the files (reloads carry every change); "
            "give the snippet's lua_shared_dict more room.",
            exc,
        )
        with contextlib.suppress(DynamicPushFailed):
            await self._endpoint().push(self.encoder.encode(self.generation, {}, full=True))

    # Re-sync and drift -----------------------------------------------------------------------------

    def reloaded(self, generation: int) -> None:
        """nginx was told to reload with the state file of ``generation``: re-sync once it shows."""
        self.awaiting, self._awaiting_since, self._warned = generation, time.monotonic(), False
        self._wake.set()

    def wake(self) -> None:
        """Sync now (SIGHUP asks for it: an operator's way to check for drift at once)."""
        self._wake.set()

    async def run(self) -> None:
        """In the daemon's TaskGroup: sync after each reload, and every DRIFT_PERIOD."""
        delay = DRIFT_PERIOD
        while True:
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            delay = CONFIRM_POLL if await self.sync() else DRIFT_PERIOD

    async def settle(self) -> None:
        """A one-shot command: sync now, waiting (up to CONFIRM_WAIT) for a reload to show."""
        for _ in range(int(CONFIRM_WAIT / CONFIRM_POLL) + 1):
            if not await self.sync():
                return
            await asyncio.sleep(CONFIRM_POLL)

    async def sync(self) -> bool:
        """Compare nginx's runtime state with the files' and repair a difference; True: ask again soon."""
        if self.expected is None:
            return False
        pushes = self._pushes
        try:
            answer = await self._endpoint().fetch_text()
        except DynamicPushFailed as exc:
            self.last_error = str(exc)
            log.debug("Runtime state not read: %s", exc)
            return False
        held = head_generation(answer)  # None: not a peer document, which the decode below says
        async with self._lock:
            if self._pushes != pushes:
                return True  # pushed while we read: what we read is behind, read again
            if held is not None and self._unconfirmed(held):
                return time.monotonic() - self._awaiting_since < CONFIRM_WAIT
            self.awaiting = None
            # Bytes first: decoding 5,000 upstreams takes ~0.2 s and ~10 MB, to find what mostly is equal.
            if held is not None and await asyncio.to_thread(answers, self.encoder, answer, self.expected):
                self.generation = max(self.generation, held)
                return False
            await self._compare(answer)
        return False

    async def _compare(self, answer: bytes) -> None:
        """The bytes differ: decode what nginx holds, and repair it unless it holds the same peers."""
        assert self.expected is not None
        try:
            held: State | None = await self._endpoint().read(answer)
        except DynamicUpdateInvalid as exc:
            log.warning("%s; replacing it.", exc)
            held = None  # nothing we can read is worth keeping: the full push below replaces it
        if held is not None and await asyncio.to_thread(same_peers, held.upstreams, self.expected):
            self.generation = max(self.generation, held.generation)
            return
        await self._repair(held)

    def _unconfirmed(self, held: int) -> bool:
        """Whether nginx still runs without the state file of the last reload (ask again, or leave it)."""
        if self.awaiting is None or held >= self.awaiting:
            return False
        if time.monotonic() - self._awaiting_since >= CONFIRM_WAIT and not self._warned:
            self._warned = True
            log.warning(
                "nginx has not loaded the runtime state written with its reload (generation %d) within %gs: "
                "the reload failed, or its workers cannot read %s (see nginx's error log). Runtime state is "
                "left as nginx holds it until the next reload.",
                self.awaiting,
                CONFIRM_WAIT,
                self.config.state_file,
            )
        return True

    async def _repair(self, held: State | None) -> None:
        assert self.expected is not None
        self.generation = next_generation(max(self.generation, held.generation if held else 0), self.now_ms())
        try:
            await self._post(self.generation, self.expected, full=True)
        except DynamicPushFailed as exc:
            log.warning("Runtime state differs from the files and could not be repaired: %s", exc)
            return
        self.metrics.dynamic_repairs.inc()
        log.info(
            "Runtime state differed from the files; repaired with a full push (generation %d).",
            self.generation,
        )

    def status(self) -> dict[str, Any]:
        """The ``dynamic`` part of /status."""
        pushed = datetime.fromtimestamp(self.last_push, UTC).isoformat() if self.last_push else None
        return {
            "mode": "dynamic",
            "endpoint": self.config.where,
            "generation": self.generation,
            "last_push": pushed,
            "last_error": self.last_error,
        }
