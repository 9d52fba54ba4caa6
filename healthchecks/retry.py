"""The companion's retries: exponential backoff with jitter, for ever, through tenacity (as the sidecar's).

The engine and Consul may be away for hours; the daemon never gives up on them, and a failure is logged
at its 1st, 2nd and 4th attempt, then every ``LOG_EVERY``-th (``plumbing.logs.worth_logging``).
"""

from __future__ import annotations

from collections.abc import Callable

import tenacity

__all__ = ["BACKOFF_INITIAL", "BACKOFF_MAX", "LOG_EVERY", "retrying"]

BACKOFF_INITIAL = 0.2
BACKOFF_MAX = 10.0
LOG_EVERY = 20


def retrying(
    errors: tuple[type[Exception], ...], before_sleep: Callable[[tenacity.RetryCallState], None]
) -> tenacity.AsyncRetrying:
    """Retry ``errors`` for ever, backing off from BACKOFF_INITIAL to BACKOFF_MAX; others propagate."""
    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(errors),
        # Half the exponential step, plus a random part of up to the other half: waits spread over
        # [base/2, base], so the engine's and Consul's retries do not march in step.
        wait=tenacity.wait_exponential(multiplier=BACKOFF_INITIAL / 2, max=BACKOFF_MAX / 2)
        + tenacity.wait_random_exponential(multiplier=BACKOFF_INITIAL / 2, max=BACKOFF_MAX / 2),
        before_sleep=before_sleep,
        reraise=True,
    )
