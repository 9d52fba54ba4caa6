"""systemd readiness: tell the service manager we are ready, when it asked (``NOTIFY_SOCKET``)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping

__all__ = ["notify"]

log = logging.getLogger(__name__)


def notify(env: Mapping[str, str], message: str = "READY=1") -> bool:
    """Send ``message`` to $NOTIFY_SOCKET if set; True when sent. Never raises: readiness is advisory."""
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    # An abstract socket is written with a leading '@' and means a leading NUL byte.
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(target)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("Could not notify systemd at %s: %s", address, exc)
        return False
    return True
