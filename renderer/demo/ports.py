"""Loopback ports for the demo's parts."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket

from .process import PartFailed

__all__ = ["accepts", "free_port", "reserve_check"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def accepts(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port right now."""
    with contextlib.suppress(OSError):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        await writer.wait_closed()
        return True
    return False


def reserve_check(part: str, port: int) -> None:
    """Raise PartFailed naming ``part`` when 127.0.0.1:port cannot be listened on."""
    with socket.socket() as s:
        # As nginx does: a port left in TIME_WAIT by an earlier run is free to use.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            why = "the port is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise PartFailed(
                f"{part} cannot listen on 127.0.0.1:{port}: {why}; choose another port with --port."
            ) from None
