"""``upstreams-registrar``: run the companion, or check its configuration.

Exit codes: 0 success (and a clean stop on SIGTERM/SIGINT), 1 an error (one sentence on stderr; the
traceback only with ``--debug``), 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

from discovery.consul import ConsulClient
from discovery.containers import DockerEngine
from discovery.errors import UpstreamsError

from .agent import Agent
from .config import RegistrarConfig, load_config
from .daemon import Registrar
from .files import ServiceFiles

__all__ = ["main"]

log = logging.getLogger("healthchecks")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upstreams-registrar",
        description="Register containers and declared services with their health checks in Consul.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "Run until SIGTERM."),
        ("check", "Validate the config file and the service files, then exit."),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--config", "-c", required=True, type=Path, help="the TOML config file")
        cmd.add_argument("--debug", action="store_true", help="log every decision; print tracebacks")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.debug:
        logging.getLogger("urllib3").setLevel(logging.WARNING)
        logging.getLogger("docker").setLevel(logging.WARNING)
        logging.getLogger("watchdog").setLevel(logging.WARNING)
    try:
        config = load_config(args.config, os.environ)
        if args.command == "check":
            return _check(config)
        asyncio.run(_run(config))
    except UpstreamsError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"upstreams-registrar: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _check(config: RegistrarConfig) -> int:
    count = 0
    if config.services_dir is not None:
        files = ServiceFiles(config.services_dir, config.host.hostname, config.host.advertise_address)
        errors = files.check_all()
        for error in errors:
            print(f"upstreams-registrar: {error}", file=sys.stderr)
        if errors:
            return 1
        count = len(files.paths())
    print(f"{config.path}: OK ({count} service files).")
    return 0


async def _run(config: RegistrarConfig) -> None:
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
        await Registrar(config, Agent(client), engine).run()
    except asyncio.CancelledError:
        log.info("Stopped.")
    finally:
        if engine is not None:
            await engine.close()
        await client.close()
