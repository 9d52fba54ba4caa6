"""Logging set-up shared by both daemons: one line per event, human or JSON; and when to repeat a failure."""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["setup_logging", "worth_logging"]


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(*, debug: bool = False, fmt: str = "human", level: str | None = None) -> None:
    """Configure the root logger to write one line per event to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else getattr(logging, (level or "INFO").upper(), logging.INFO))
    if not debug:
        logging.getLogger("asyncio").setLevel(logging.WARNING)
        logging.getLogger("watchdog").setLevel(logging.WARNING)


def worth_logging(attempt: int, every: int) -> bool:
    """Whether the n-th failure in a row is logged: the 1st, 2nd and 4th, then every ``every``-th.

    An outage of hours then says so a few times at its start and now and then after, not every retry.
    """
    return attempt in (1, 2, 4) or attempt % every == 0
