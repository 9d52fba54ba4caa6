"""The ACL token guard: no round renders until the token is known to read services.

With ``default_policy = deny`` a token that reads nothing gets ``200 []`` for every service, which
renders as empty upstreams; ``discovery.acl.token_problem`` tells that apart, and this keeps asking
until the answer is good.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from discovery.acl import token_problem
from discovery.client import ConsulClient
from plumbing.errors import ConsulDenied, ConsulUnavailable

__all__ = ["TOKEN_RECHECK", "TokenGuard"]

log = logging.getLogger("renderer.daemon")  # split out of the daemon: its lines keep their logger name
TOKEN_RECHECK = 5.0


class TokenGuard:
    """Checks the token before the first render, and keeps checking while it is refused."""

    def __init__(self, client: ConsulClient, *, once: bool, on_usable: Callable[[], None]) -> None:
        self.client = client
        self.once = once
        self.on_usable = on_usable  # called once the token is usable (rounds were skipped until now)
        self.checked = False
        self.problem: str | None = None  # a sentence while the ACL token cannot read services

    async def run(self) -> None:
        """Return once the token is usable; a one-shot command raises ConsulDenied instead of waiting."""
        reported = None
        while True:
            try:
                problem = await token_problem(self.client)
            except ConsulUnavailable:
                await asyncio.sleep(TOKEN_RECHECK)  # the watcher reports Consul's absence itself
                continue
            if problem is None:
                self.problem, self.checked = None, True
                self.on_usable()
                return
            self.problem = problem
            if self.once:
                raise ConsulDenied(problem)  # a one-shot command cannot wait for a token to be fixed
            if problem != reported:
                log.error("Not rendering: %s", problem)
                reported = problem
            await asyncio.sleep(TOKEN_RECHECK)
