"""Counting a process's TCP connections to a port, asking the kernel for established sockets only.

Why not /proc/net/tcp: it lists every socket in TIME_WAIT too, and a benchmark whose prober opens a
connection per request leaves 60,000 of them on loopback; parsing that table took 0.14 s of CPU per
sample, so a sampler at 5 Hz took 70 % of a core from the process it measured. The kernel's
socket-diagnostics netlink interface (what `ss` uses) filters by state before it answers.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

__all__ = ["connections_to", "established"]

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_ESTABLISHED = 1
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_REQUEST = struct.Struct("=BBBBI48x")  # inet_diag_req_v2: family, protocol, extensions, pad, states, sockid
_DPORT = 6  # in inet_diag_msg: family, state, timer, retrans, then the sockid (sport, dport: big-endian)
_INODE = 68  # after the sockid (48 bytes), expires, rqueue, wqueue and uid


def connections_to(pid: int, port: int) -> int:
    """How many established TCP connections process ``pid`` holds to ``port`` on any address."""
    inodes = _socket_inodes(pid)
    return sum(1 for remote, inode in established() if remote == port and inode in inodes)


def established() -> Iterator[tuple[int, int]]:
    """(remote port, inode) of every established TCP socket, IPv4 and IPv6."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
        for family in (socket.AF_INET, socket.AF_INET6):
            yield from _dump(nl, family)


def _dump(nl: socket.socket, family: int) -> Iterator[tuple[int, int]]:
    body = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_ESTABLISHED)
    header = _HEADER.pack(_HEADER.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    nl.send(header + body)
    while True:
        data = nl.recv(1 << 16)
        offset = 0
        while offset < len(data):
            length, kind = _HEADER.unpack_from(data, offset)[:2]
            if kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR:
                raise OSError(f"the kernel refused a socket dump for address family {family}")
            msg = offset + _HEADER.size
            (remote,) = struct.unpack_from("!H", data, msg + _DPORT)
            (inode,) = struct.unpack_from("=I", data, msg + _INODE)
            yield remote, inode
            offset += (length + 3) & ~3  # messages are 4-byte aligned


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes
