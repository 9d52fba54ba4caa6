"""``upstreams-registrar``: run the companion, or check its configuration.

Exit codes, as in the table in docs/configuration.md: 0 success (and a clean stop on SIGTERM/SIGINT); 1 ``run``
stopped by an error it cannot retry; 2 bad usage or config: an invalid config or service file (``check``'s
finding, and ``run`` cannot start with one), the status port in use. Errors are one sentence on stderr (the
traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

from discovery.client import ConsulClient
from plumbing.errors import ConfigError, UpstreamsError
from plumbing.logs import setup_logging
from plumbing.malloc import limit_arenas

from .agent import Agent
from .config import RegistrarConfig, load_config
from .daemon import Registrar
from .engine import DockerEngine, socket_problem
from .files import ServiceFiles

__all__ = ["main"]

log = logging.getLogger("healthchecks")
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upstreams-registrar",
        description="Register containers and declared services with their health checks in Consul.",
    )
    formats = ("human", "json")
    parser.add_argument("--log-format", choices=formats, default="human", help="log line format")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "Run until SIGTERM."),
        ("check", "Validate the config file and the service files, then exit."),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--config", "-c", required=True, type=Path, help="the TOML config file")
        cmd.add_argument("--debug", action="store_true", help="log every decision; print tracebacks")
        # SUPPRESS: given after the command it wins, else the value given before it stays.
        cmd.add_argument("--log-format", choices=formats, default=argparse.SUPPRESS, help="log line format")
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    environ = dict(os.environ if env is None else env)
    setup_logging(debug=args.debug, fmt=args.log_format)
    if not args.debug:
        logging.getLogger("urllib3").setLevel(logging.WARNING)
        logging.getLogger("docker").setLevel(logging.WARNING)
    try:
        config = load_config(args.config, environ)
        if args.command == "check":
            return _check(config)
        limit_arenas(environ)  # a daemon: before its first worker thread
        asyncio.run(_run(config, environ))
    except UpstreamsError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"upstreams-registrar: {exc}", file=sys.stderr)
        # A config problem is exit 2 for both commands, as for `upstreams`; anything else stopped `run`.
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_ERROR
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _check(config: RegistrarConfig) -> int:
    count = 0
    if config.services_dir is not None:
        files = ServiceFiles(config.services_dir, config.host.hostname, config.host.advertise_address)
        errors = files.check_all()
        for error in errors:
            print(f"upstreams-registrar: {error}", file=sys.stderr)
        if errors:
            return EXIT_USAGE
        count = len(files.paths())
    # A warning, not a failure: the engine may well start after the companion (it reconnects).
    missing = socket_problem(config.engine) if config.engine else None
    if missing is not None:
        print(f"upstreams-registrar: warning: {missing}", file=sys.stderr)
    runc = config.runc.problem() if config.runc else None  # also a warning: the engine may start later
    if runc is not None:
        print(f"upstreams-registrar: warning: {runc}", file=sys.stderr)
    print(f"{config.path}: OK ({count} service files).")
    return EXIT_OK


async def _run(config: RegistrarConfig, env: Mapping[str, str]) -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    client = ConsulClient(config.consul)
    engine = DockerEngine(config.engine) if config.engine else None
    log.info(
        "Registering for host %s on Consul %s%s.",
        config.owner,
        config.consul.address,
        f", containers from {config.engine}" if config.engine else "",
    )
    try:
        await Registrar(config, Agent(client, config.check_output_limit), engine, env=env).run()
    except asyncio.CancelledError:
        log.info("Stopped.")
    finally:
        if engine is not None:
            await engine.close()
        await client.close()
