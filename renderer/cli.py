"""``upstreams``: the sidecar's command line (watch, render, check, status, nginx-snippet).

Exit codes (the table in docs/configuration.md): 0 done; 1 a template was not rendered or applied, Consul
did not answer within ``--timeout``, or (``status``) the sidecar is unhealthy; 2 bad usage, config or
template; 3 Consul refused the ACL token (``render``: final, not retried).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType

from discovery.model import Snapshot
from plumbing.duration import parse_duration
from plumbing.errors import ConfigError, ConsulDenied, TemplateError, UpstreamsError
from plumbing.logs import setup_logging
from plumbing.malloc import limit_arenas

from . import convert
from .config import SidecarConfig, load_config
from .daemon import Sidecar
from .dynamic.snippet import main_context, snippet
from .nginx import missing_programs
from .status import show_status
from .template import TemplateSet

__all__ = ["main"]

log = logging.getLogger("upstreams")
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DENIED = 0, 1, 2, 3

# The demo is a package of its own (demo/): it imports the harness and discovery, and runs the daemons
# through their console scripts. Imports flow one way, so the sidecar never imports it statically: the
# ``demo`` subcommand is loaded by name when the command line is built. Without the package the
# subcommand is still listed and says what to install; without rich (the demo extra), demo.cli says so.
DEMO_CLI = "demo.cli"
MISSING_DEMO = "upstreams demo is not installed here; install the package with its demo extra: pip install 'upstreams[demo]'."


def _demo_cli() -> ModuleType | None:
    """The demo's command line module, or None when the demo package is not installed."""
    try:
        return importlib.import_module(DEMO_CLI)
    except ModuleNotFoundError as exc:
        if exc.name not in ("demo", DEMO_CLI):
            raise  # the demo is there but broken: show that, not "not installed"
        return None


def _add_demo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo_cli = _demo_cli()
    if demo_cli is not None:
        demo_cli.add_parser(sub)
        return
    missing = sub.add_parser("demo", help="the self-contained demonstration (not installed here)")
    missing.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def _run_demo(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    demo_cli = _demo_cli()
    if demo_cli is None:
        raise UpstreamsError(MISSING_DEMO)
    run: Callable[[argparse.Namespace, Mapping[str, str]], int] = demo_cli.run
    return run(args, env)


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
    render.add_argument(
        "--timeout",
        type=_timeout,
        default=60.0,
        help="how long to wait for Consul: '30s', '1m' or seconds (default 60)",
    )
    check = sub.add_parser("check", help="validate the config and every template, without Consul")
    status = sub.add_parser(
        "status", help="show the upstreams and instances as the running sidecar sees them"
    )
    status.add_argument("--json", action="store_true", help="print the sidecar's status as JSON")
    snippet = sub.add_parser(
        "nginx-snippet", help="print the http {} directives for [nginx] dynamic (runtime peer updates)"
    )
    snippet.add_argument(
        "--main", action="store_true", help="print only the load_module lines for nginx.conf's main context"
    )
    for p in (watch, render, check, status, snippet):
        p.add_argument("--config", "-c", type=Path, required=True, help="the TOML config file")
    _add_demo_parser(sub)
    convert.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``upstreams`` console script."""
    args = _parser().parse_args(argv)
    environ = dict(os.environ if env is None else env)
    setup_logging(debug=args.debug, fmt=args.log_format, level=args.log_level)
    try:
        if args.command == "check":
            return _check(args.config, environ)
        if args.command == "convert":
            return convert.run(args, environ, Path.cwd())
        if args.command == "demo":
            return _run_demo(args, environ)
        config = load_config(args.config, environ)
        if args.command == "nginx-snippet":
            return _snippet(config, main_only=args.main)
        if args.command == "status":
            return show_status(config, as_json=args.json)
        if args.command == "render":
            return asyncio.run(_render(config, environ, dry=args.dry, timeout=args.timeout))
        limit_arenas(environ)  # a daemon: before its first worker thread
        return asyncio.run(_watch(config, environ))
    except UpstreamsError as exc:
        if args.debug:
            log.exception("Stopped.")
        print(f"upstreams: {exc}", file=sys.stderr)
        # Mistakes in what the user wrote (config, template) are usage errors for every command.
        usage = args.command == "check" or isinstance(exc, (ConfigError, TemplateError))
        if usage:
            return EXIT_USAGE
        return EXIT_DENIED if isinstance(exc, ConsulDenied) else EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK


def _snippet(config: SidecarConfig, main_only: bool) -> int:
    """Print the nginx side of ``[nginx] dynamic``; a note on stderr when the config does not turn it on."""
    print(main_context() if main_only else snippet(config), end="")
    if not config.nginx.dynamic.enabled:
        print(
            f"upstreams: note: {config.path} has [nginx] dynamic off; the sidecar pushes nothing until it is on.",
            file=sys.stderr,
        )
    return EXIT_OK


def _check(path: Path, env: Mapping[str, str]) -> int:
    """Validate config and templates offline: one line per problem."""
    config = load_config(path, env)
    templates = TemplateSet(
        (t.source for t in config.templates), config.template_env, config.nginx.dynamic.enabled
    )
    problems = [str(e) for e in templates.load()]
    if not problems:
        # Render against an empty catalog: finds runtime errors (sandbox, bad arguments) without Consul.
        _, errors = templates.render_all(Snapshot())
        problems = [str(e) for e in errors]
    # Found now rather than by the first render failing with exit 127.
    search_path = env.get("PATH", os.defpath)
    problems += [f"{config.path} [nginx]: {what}." for what in missing_programs(config.nginx, search_path)]
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
    for failure in sidecar.failures:
        print(f"upstreams: {failure}", file=sys.stderr)
    return EXIT_ERROR if sidecar.failures else EXIT_OK


def _timeout(text: str) -> float:
    """``--timeout``: a duration as the config writes them ("10s", "1m"), or plain seconds."""
    try:
        # Plain digits stay seconds, as before durations were accepted.
        seconds = float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as '30s', '1m' or 45")
    return seconds


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
