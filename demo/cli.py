"""The ``upstreams demo`` subcommand, as the sidecar's command line loads it by name (see renderer/cli.py)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from harness.process import PartFailed

from .options import DemoOptions, add_parser

__all__ = ["add_parser", "run"]

MISSING_EXTRA = (
    "upstreams demo needs rich, which the demo extra installs: pip install 'upstreams[demo]' "
    "(bash .ci/setup does)."
)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run the demo for parsed ``upstreams demo`` arguments; return its exit code."""
    try:
        # Imported here, not above: the arguments parse (and ``upstreams --help`` works) without rich.
        from .stack import run_demo
    except ModuleNotFoundError as exc:
        if exc.name != "rich" and not (exc.name or "").startswith("rich."):
            raise
        raise PartFailed(MISSING_EXTRA) from exc
    return run_demo(DemoOptions.from_args(args), env)
