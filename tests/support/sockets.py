"""Counting a process's TCP connections to a port: the harness's (harness/sockets.py)."""

from harness.sockets import connections_to

__all__ = ["connections_to"]
