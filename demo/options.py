"""The demo's options, and its ``upstreams demo`` subcommand's arguments."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path

from discovery.settings import ConsulSettings
from plumbing.errors import ConfigError
from plumbing.table import Table

__all__ = ["ENGINES", "DemoOptions", "add_parser"]

ENGINES = ("auto", "podman", "processes")


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    """What ``upstreams demo`` was asked to do."""

    replicas: int = 4
    port: int | None = None  # nginx's port on 127.0.0.1; None: a free one
    consul_address: str | None = None  # None: start a dev agent
    duration: float | None = None  # None: until q, Ctrl-C or SIGTERM
    interactive: bool = False
    plain: bool = False
    engine: str = "auto"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DemoOptions:
        """The options from parsed ``upstreams demo`` arguments."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


def consul_address(value: str) -> str:
    """``--consul-address``, checked as the sidecar checks its own: a malformed one fails at once."""
    try:
        settings = ConsulSettings.from_table(Table({"address": value}, "--consul-address"), {}, Path("/"))
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if settings.unix_socket:
        raise argparse.ArgumentTypeError("the demo needs an http(s)://host:port address, not a unix socket")
    return settings.address


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` subcommand to the ``upstreams`` command line."""
    demo = sub.add_parser(
        "demo", help="run Consul, nginx, both daemons and a replicated service on this host, and show it work"
    )
    demo.add_argument(
        "--replicas", type=int, default=4, choices=range(2, 9), metavar="{2..8}", help="default 4"
    )
    demo.add_argument("--port", type=int, help="nginx's port on 127.0.0.1 (default: a free one)")
    demo.add_argument(
        "--consul-address", type=consul_address, help="use this Consul agent instead of starting a dev agent"
    )
    demo.add_argument("--duration", type=float, help="stop after this many seconds (default: at q or Ctrl-C)")
    demo.add_argument(
        "--interactive", action="store_true", help="drive the replicas with keys, not the story"
    )
    demo.add_argument("--plain", action="store_true", help="one line per event instead of the live view")
    demo.add_argument("--engine", choices=ENGINES, default="auto", help="replicas as containers or processes")
