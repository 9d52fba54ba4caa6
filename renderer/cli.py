"""``upstreams``: the sidecar's command line (watch, render, check)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from discovery.errors import ConfigError, TemplateError, UpstreamsError
from discovery.logs import setup_logging
from discovery.model import Snapshot

from . import demo
from .config import SidecarConfig, load_config
from .daemon import Sidecar
from .status import show_status
from .template import TemplateSet

__all__ = ["main"]

log = logging.getLogger("upstreams")
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upstreams", description="Keep nginx upstreams in step with Consul."
    )
    parser.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
    parser.add_argument("--log-format", choices=("human", "json"), default="human", help="log line format")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    watch = sub.add_parser("watch", help="run until SIGTERM, re-rendering on every change")
    render = sub.add_parser("render", help="render once from the current catalog, apply, and exit")
    render.add_argument("--dry", action="store_true", help="print the rendered text and touch nothing")
    render.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for Consul (default 60)")
    check = sub.add_parser("check", help="validate the config and every template, without Consul")
    status = sub.add_parser(
        "status", help="show the upstreams and instances as the running sidecar sees them"
    )
    status.add_argument("--json", action="store_true", help="print the sidecar's status as JSON")
    for p in (watch, render, check, status):
        p.add_argument("--config", "-c", type=Path, required=True, help="the TOML config file")
    demo.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``upstreams`` console script."""
    args = _parser().parse_args(argv)
    environ = dict(os.environ if env is None else env)
    setup_logging(debug=args.debug, fmt=args.log_format, level=args.log_level)
    try:
        if args.command == "check":
            return _check(args.config, environ)
        if args.command == "demo":
            return demo.run_demo(demo.DemoOptions.from_args(args), environ)
        config = load_config(args.config, environ)
        if args.command == "status":
            return show_status(config, as_json=args.json)
        if args.command == "render":
            return asyncio.run(_render(config, environ, dry=args.dry, timeout=args.timeout))
        return asyncio.run(_watch(config, environ))
    except UpstreamsError as exc:
        if args.debug:
            log.exception("Stopped.")
        print(f"upstreams: {exc}", file=sys.stderr)
        # Mistakes in what the user wrote (config, template) are usage errors for every command.
        usage = args.command == "check" or isinstance(exc, (ConfigError, TemplateError))
        return EXIT_USAGE if usage else EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK


def _check(path: Path, env: Mapping[str, str]) -> int:
    """Validate config and templates offline: one line per problem."""
    config = load_config(path, env)
    templates = TemplateSet(t.source for t in config.templates)
    problems = [str(e) for e in templates.load()]
    if not problems:
        # Render against an empty catalog: finds runtime errors (sandbox, bad arguments) without Consul.
        _, errors = templates.render_all(Snapshot())
        problems = [str(e) for e in errors]
    for problem in problems:
        print(f"upstreams: {problem}", file=sys.stderr)
    if problems:
        return EXIT_USAGE
    print(f"{path}: config and {len(config.templates)} template(s) are valid.")
    return EXIT_OK


async def _render(config: SidecarConfig, env: Mapping[str, str], *, dry: bool, timeout: float) -> int:
    sidecar = Sidecar(config, env=env)
    try:
        async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow Ctrl-C's cancel
            await sidecar.run(once=True, dry=dry)
    except TimeoutError:
        problem = sidecar.last_error or f"Consul at {config.consul.address} did not answer"
        print(f"upstreams: render did not complete within {timeout:g}s: {problem}", file=sys.stderr)
        return EXIT_ERROR
    if sidecar.dry_output is not None:
        sys.stdout.write("".join(sidecar.dry_output))
        return EXIT_OK
    if sidecar.last_error is not None:
        print(f"upstreams: {sidecar.last_error}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


async def _watch(config: SidecarConfig, env: Mapping[str, str]) -> int:
    sidecar = Sidecar(config, env=env)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    loop.add_signal_handler(signal.SIGHUP, sidecar.reload_config)
    log.info("Watching Consul at %s for %d template(s).", config.consul.address, len(config.templates))
    with contextlib.suppress(asyncio.CancelledError):
        await sidecar.run()
    log.info("Stopped.")
    return EXIT_OK
