"""A guard that lets a process reach 127.0.0.0/8, ::1 and local (Unix) sockets only.

The local service runs with it on, so nothing it does can reach AWS or anywhere else; the tests
use it in recording mode to prove that a whole local-mode run stays on this machine.
"""

from __future__ import annotations

import ipaddress
import socket
import sys

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class NonLocalConnection(PermissionError):
    """A connection to somewhere other than this machine."""


def is_local(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]")
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def install_guard(violations: list | None = None, strict: bool = True) -> None:
    """Watch ``socket.connect`` and ``socket.getaddrinfo``; record (and, if strict, refuse) the rest."""

    def hook(event: str, args) -> None:
        if event == "socket.getaddrinfo":
            host = args[0]
        elif event == "socket.connect":
            sock, address = args
            if sock.family == getattr(socket, "AF_UNIX", None) or not isinstance(address, tuple):
                return
            host = address[0]
        else:
            return
        if is_local(host):
            return
        if violations is not None:
            violations.append((event, str(host)))
        if strict:
            raise NonLocalConnection(f"local mode refuses to reach {host!r} ({event}): only 127.0.0.1 is allowed")

    sys.addaudithook(hook)
