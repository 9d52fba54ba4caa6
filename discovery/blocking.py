"""The blocking-query loop and its rules, in one place.

Rules (Consul's documentation on blocking queries, and consul-template's watch/view.go):

1. Send the last ``X-Consul-Index`` back as ``?index=N&wait=W``; Consul holds the call until something
   changes or W ends (plus up to W/16 of jitter), so the client timeout is longer than W x 17/16.
2. An answer is no proof of change: the caller compares data before acting (we only yield changed data).
3. If the index goes backwards (a snapshot restore, a new leader with older state), reset and start over.
4. Never send index 0 after the first answer: it does not block and the loop would spin. Use at least 1.
5. Keep at least ``min_interval`` between the starts of two fetches of one query (rate limit).
6. On errors, back off exponentially with jitter up to a cap, forever; report each error to the caller.
7. After an error, start over without an index: Consul may have restarted with a lower index, and a
   blocking call with the old, higher one would hang for the whole wait instead of answering.
8. With ``max_stale`` (consul-template's rule), reads carry ``?stale``: any server answers from its own
   copy, also while there is no leader, and the reads of many sidecars spread over every server. If an
   answer's ``X-Consul-LastContact`` (milliseconds since that server last heard from a leader) is more
   than ``max_stale``, it is too old: ask again at once in the default mode, which the leader answers.
   The consul transport applies this rule to every catalog, health and KV read (``too_stale``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import tenacity

from plumbing.errors import ConsulError
from plumbing.logs import worth_logging

__all__ = ["BlockingQuery", "consul_retrying", "next_index", "too_stale"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def as_index(returned: int | str | None) -> int:
    """An ``X-Consul-Index`` as a number (0 when missing or unreadable)."""
    try:
        return int(returned) if returned is not None else 0
    except (TypeError, ValueError):
        return 0


def next_index(previous: int, returned: int | str | None) -> int:
    """The index to send next, given the one sent (0 at first) and the one Consul returned."""
    value = as_index(returned)
    if value < previous:
        # Rule 3: went backwards; 0 would mean "start over", but rule 4 forbids sending it.
        value = 0
    return max(value, 1)  # rule 4


def too_stale(last_contact: str | None, max_stale: float) -> bool:
    """Rule 8: whether a stale answer's ``X-Consul-LastContact`` header is older than ``max_stale`` seconds.

    A missing or unreadable header (Consul's streaming backend omits it) is no evidence of age.
    """
    try:
        millis = int(last_contact) if last_contact is not None else 0
    except ValueError:
        return False
    return millis > max_stale * 1000


def consul_retrying(
    before_sleep: Callable[[tenacity.RetryCallState], None], initial: float = 0.25, cap: float = 10.0
) -> tenacity.AsyncRetrying:
    """Rule 6: retry ConsulErrors forever, backing off exponentially with jitter up to ``cap``."""
    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(ConsulError),
        wait=tenacity.wait_exponential_jitter(multiplier=initial, max=cap, jitter=initial),
        before_sleep=before_sleep,
        reraise=True,
    )


@dataclass
class BlockingQuery(Generic[T]):
    """Run one blocking query forever, yielding its data each time it changes.

    ``fetch(index, wait)`` performs one request and returns ``(index, data)``. ``on_error`` and
    ``on_success`` let the owner track whether Consul is reachable.
    """

    name: str
    fetch: Callable[[int, str], Awaitable[tuple[int | str | None, T]]]
    wait: str = "5m"
    min_interval: float = 0.1
    backoff_initial: float = 0.25
    backoff_max: float = 10.0
    on_error: Callable[[ConsulError], None] | None = None
    on_success: Callable[[], None] | None = None
    start: int = 0  # the index to block from at once (0: the first call answers at once)

    async def changes(self) -> AsyncIterator[T]:
        """Yield the first answer, then every answer whose data differs from the last one yielded."""
        index = self.start
        last: T | None = None
        first = True
        started = 0.0
        while True:
            delay = self.min_interval - (time.monotonic() - started)
            if not first and delay > 0:
                await asyncio.sleep(delay)  # rule 5
            started = time.monotonic()
            returned, data = await self._fetch_with_retry(index)
            index = next_index(index, returned)
            if first or data != last:
                first = False
                last = data
                yield data

    async def _fetch_with_retry(self, index: int) -> tuple[int | str | None, T]:
        async for attempt in consul_retrying(self._report, self.backoff_initial, self.backoff_max):
            with attempt:
                # Rule 1 (wait is only sent with an index; the first call answers at once); rule 7.
                result = await self.fetch(index if attempt.retry_state.attempt_number == 1 else 0, self.wait)
        if self.on_success:
            self.on_success()
        return result

    def _report(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ConsulError):
            if worth_logging(state.attempt_number, 10):
                log.warning("%s (query %s, attempt %d; retrying)", exc, self.name, state.attempt_number)
            if self.on_error:
                self.on_error(exc)
