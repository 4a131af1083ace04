"""systemd's readiness protocol (``sd_notify``), without libsystemd.

With ``Type=notify``, systemd passes ``$NOTIFY_SOCKET``, a unix datagram socket (a path,
or ``@name`` in the abstract namespace), and waits for ``READY=1`` before it considers
the service started: units ordered after uvgate, and ``systemctl start``, then wait
for a port that accepts connections rather than for a process that exists.
``RELOADING=1`` (then ``READY=1`` again) brackets a reload (SIGHUP, ``ExecReload``), and
``STOPPING=1`` tells it the shutdown has begun. Outside systemd the variable is unset
and every call here does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time

__all__ = ["notify", "ready", "reloading", "stopping"]

log = logging.getLogger("uvgate.systemd")


def _address(value: str) -> str | None:
    if value.startswith("@"):  # abstract namespace: a leading NUL byte on the wire
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock: and others: not for a gateway


def notify(state: str) -> bool:
    """Send ``state`` (``"READY=1"``...) to ``$NOTIFY_SOCKET``; False when not under systemd
    or when the message could not be sent (logged: systemd would wait for it in vain)."""
    target = os.environ.get("NOTIFY_SOCKET")
    if not target:
        return False
    address = _address(target)
    if address is None:
        log.warning("NOTIFY_SOCKET %r is not a unix socket; not notifying systemd", target)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("cannot notify systemd (%s) at %r: %s", state, target, exc)
        return False
    return True


def ready() -> bool:
    """Every listener accepts connections."""
    return notify("READY=1\nSTATUS=accepting connections")


def stopping() -> bool:
    """Shutdown has begun (connections are being closed)."""
    return notify("STOPPING=1\nSTATUS=shutting down")


def reloading() -> bool:
    """A reload has begun; ``ready()`` says it is over (applied or refused)."""
    # MONOTONIC_USEC: systemd 253+ wants it with RELOADING=1 (Type=notify-reload).
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={now}\nSTATUS=reloading the configuration")
