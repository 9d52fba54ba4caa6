"""The ``convert`` subcommand's arguments (light: the CLI builds its parser at every start)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``convert`` subcommand's arguments."""
    p = sub.add_parser(
        "convert", help="convert consul-template's config and Go templates to sidecar.toml and Jinja2"
    )
    p.add_argument("config", nargs="?", type=Path, help="a consul-template configuration file (HCL)")
    p.add_argument(
        "--template",
        action="append",
        default=[],
        metavar="IN:OUT[:COMMAND]",
        help="consul-template's -template form",
    )
    p.add_argument(
        "--output", "-o", type=Path, required=True, help="folder for sidecar.toml and the templates"
    )
