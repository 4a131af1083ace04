"""Target guard: load traffic goes to loopback addresses only unless --allow-remote is given."""

from __future__ import annotations

import ipaddress
import socket


class RemoteTargetError(ValueError):
    """The target or source address is not a loopback address."""


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is in 127.0.0.0/8 or ::1 (no DNS beyond the hosts file)."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    h = host.strip("[]")
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(h, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    addrs = {str(info[4][0]) for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def check_target(host: str, allow_remote: bool = False) -> None:
    """Raise ``RemoteTargetError`` unless ``host`` is loopback or remote targets are allowed."""
    if not allow_remote and not is_loopback(host):
        raise RemoteTargetError(
            f"refusing to send load to {host!r}: targets must be loopback "
            "(127.0.0.0/8, ::1, localhost); pass --allow-remote for a host you own"
        )
