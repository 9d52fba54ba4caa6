"""DockerEngine's errors: an absent engine and a broken event stream are EngineErrors naming them."""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from healthchecks.engine import DockerEngine
from plumbing.errors import EngineError


@pytest.fixture(autouse=True)
def _collect_sdk_sockets() -> Iterator[None]:
    """The SDK leaves a socket unclosed when a connection is refused; collect it here, not in a later test."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_an_absent_engine_is_an_engine_error_naming_it(tmp_path: Path) -> None:
    engine = DockerEngine(f"unix://{tmp_path}/none.sock")

    async def go() -> None:
        try:
            await engine.running()
        finally:
            await engine.close()

    # A socket that is not there names itself and what to start (tests/healthchecks/engine/test_exec_monitors.py).
    with pytest.raises(EngineError, match=r"The container engine socket /.*none.sock does not exist: start"):
        asyncio.run(go())


def test_a_broken_event_stream_is_an_engine_error(tmp_path: Path) -> None:
    # A socket file nobody listens on: there, but refusing (the engine stopped without removing it).
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(tmp_path / "dead.sock"))
    dead.close()
    engine = DockerEngine(f"unix://{tmp_path}/dead.sock")

    async def go() -> None:
        try:
            async for _ in engine.events():
                pass
        finally:
            await engine.close()

    with pytest.raises(EngineError, match="could not open the event stream"):
        asyncio.run(go())
