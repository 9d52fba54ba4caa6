"""``upstreams convert``: consul-template's HCL config and Go templates -> sidecar.toml and Jinja2.

hclconfig (HCL and -template flags -> a plan), reload (a command -> [nginx]), golex + goparse (Go
template -> gonodes), expr + gofuncs + scratch + translate (nodes -> pieces), jinjatext (pieces -> Jinja2
text), report (what needs a hand), command (the CLI).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import add_parser

if TYPE_CHECKING:
    from .report import Problem

__all__ = ["add_parser", "convert", "run"]

# The converter itself (Go templates, HCL) is loaded when used: the CLI imports this package for its
# argument parser at every start of `upstreams watch`, and the rest costs about 45 ms to load.


def convert(
    config: Path | None, flags: Sequence[str], output: Path, cwd: Path, env: Mapping[str, str]
) -> list[Problem]:
    """Convert and write everything that converts (``command.convert``)."""
    from .command import convert as converting

    return converting(config, flags, output, cwd, env)


def run(args: argparse.Namespace, env: Mapping[str, str], cwd: Path) -> int:
    """Run ``upstreams convert`` (``command.run``)."""
    from .command import run as running

    return running(args, env, cwd)
