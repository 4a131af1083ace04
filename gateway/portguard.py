"""One uvgate per address: refuse to start where something already listens.

The workers of one instance share the port with SO_REUSEPORT. So would a second ``uvgate
serve`` started by the same user on the same port: the kernel would spread new
connections over both instances, two configurations, and half the clients would be
refused by the wrong secret. So before any worker binds, the main process (the
supervisor, or the only process with ``workers = 1``):

1. takes a **lock named after the address**: an abstract unix socket
   ``\\0uvgate:<address>:<port>``. Abstract names are unique per network namespace,
   exactly the scope of TCP ports; the kernel releases the name when the last process
   holding it exits (even on SIGKILL), so there is no stale lock file to clean up. The
   workers inherit it. A second uvgate on the same address fails here, however many
   workers either has, even while the first is still starting up. The socket listens,
   so the second instance can connect and ask who holds it (``SO_PEERCRED``): the
   message names the pid.
2. **probes the port**: binds a socket to each address *without* SO_REUSEPORT (with
   SO_REUSEADDR, as the listeners do, so connections in TIME_WAIT do not count) and
   closes it. Any listener there makes it fail: another uvgate on an overlapping address
   (``0.0.0.0`` and ``127.0.0.1``), any other program. Every other bind error (a port
   below 1024 without the capability, an address of another machine) shows here too.

Either way the user gets one line (``ListenError``) before any worker starts, whatever
the worker count. Port 0 (a free port picked by the kernel) needs no guard.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Iterable

__all__ = ["AddressGuard", "ListenError", "claim"]


class ListenError(OSError):
    """The address cannot be served; the message is one line for the user."""


def _addresses(host: str, port: int) -> list[tuple[int, tuple[object, ...]]]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    seen: list[tuple[int, tuple[object, ...]]] = []
    for family, _kind, _proto, _name, sockaddr in infos:
        if (family, sockaddr) not in seen:
            seen.append((family, sockaddr))
    return seen


def _shown(sockaddr: tuple[object, ...]) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _holder(name: bytes) -> int | None:
    """The pid that holds the lock ``name`` (None if it cannot be told)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(name)
            creds = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError:
            return None
    pid, _uid, _gid = struct.unpack("3i", creds)
    return pid or None


def _lock(family: int, sockaddr: tuple[object, ...]) -> socket.socket:
    address = socket.inet_pton(family, str(sockaddr[0]))
    name = b"\0uvgate:" + address.hex().encode() + b":" + str(sockaddr[1]).encode()
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lock.bind(name)
        lock.listen(1)
    except OSError as exc:
        lock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        pid = _holder(name)
        who = f"another uvgate (pid {pid})" if pid else "another uvgate"
        raise ListenError(
            f"cannot listen on {_shown(sockaddr)}: {who} already serves it "
            "(stop it first, or choose another port)"
        ) from None
    return lock


def _probe(family: int, sockaddr: tuple[object, ...]) -> None:
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # As the listeners: an IPv6 socket does not also take the IPv4 port.
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                why = "the address is already in use by another program"
            elif exc.errno == errno.EACCES:
                why = "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            else:
                why = exc.strerror or str(exc)
            raise ListenError(f"cannot listen on {_shown(sockaddr)}: {why}") from None


class AddressGuard:
    """The locks of one instance's addresses; ``release`` (or process exit) frees them."""

    def __init__(self, locks: Iterable[socket.socket] = ()) -> None:
        self.locks = list(locks)

    def release(self) -> None:
        for lock in self.locks:
            with contextlib.suppress(OSError):
                lock.close()
        self.locks.clear()

    def __enter__(self) -> AddressGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim(host: str, ports: Iterable[int | None]) -> AddressGuard:
    """Lock and probe ``host`` on each of ``ports`` (None and 0 are skipped), or raise
    ``ListenError`` naming the address and the reason."""
    guard = AddressGuard()
    try:
        for port in ports:
            if not port:
                continue
            for family, sockaddr in _addresses(host, port):
                if family not in (socket.AF_INET, socket.AF_INET6):
                    continue
                guard.locks.append(_lock(family, sockaddr))
                _probe(family, sockaddr)
    except socket.gaierror as exc:
        guard.release()
        raise ListenError(f"cannot resolve {host!r}: {exc.strerror}") from None
    except BaseException:
        guard.release()
        raise
    return guard


def describe_bind_error(host: str, port: int, exc: OSError) -> str:
    """One line for a bind that failed in a worker (the rare race past ``claim``)."""
    why = os.strerror(exc.errno) if exc.errno else str(exc)
    return f"cannot listen on {host}:{port}: {why}"
