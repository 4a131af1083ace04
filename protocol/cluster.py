"""The messages uvgate nodes exchange through Redis PUB/SUB: bytes in, values out.

A small binary layout, not JSON or msgpack, because the Redis Lua scripts build some of
them (``string.char`` and concatenation are all Lua has at hand) and because the payload
must pass through untouched: a channel event is encoded once by the node that publishes
it and written as is by every node that delivers it.

=========  =====================================================  =======================
kind       layout (after the kind byte)                           meaning
=========  =====================================================  =======================
``D``      exclude length (1 byte), exclude socket id, payload    deliver ``payload`` to
                                                                  the channel's (user's,
                                                                  watchers') connections
``J``      socket length (1 byte), socket id, first (``0``/``1``),  ``socket`` joined the
           payload                                                channel; ``payload``
                                                                  (first only) is its
                                                                  ``member_added``
``T``      (nothing)                                              close the user's
                                                                  connections (4009)
``N``      msgpack ``[op, target, message, code, reason,          a native registry
           exclude, origin]``                                     operation (or a
                                                                  control notice)
=========  =====================================================  =======================

``decode`` raises ``ClusterMessageError`` for anything else, so a stray PUBLISH on one of
our channels is dropped and counted, never acted upon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

DELIVER = 0x44  # "D"
JOIN = 0x4A  # "J"
TERMINATE = 0x54  # "T"
NATIVE = 0x4E  # "N"

MAX_ID = 255  # socket ids are ~25 bytes; one length byte


class ClusterMessageError(ValueError):
    """Not a well-formed cluster message."""


@dataclass(frozen=True, slots=True)
class Deliver:
    payload: bytes
    exclude: str | None = None


@dataclass(frozen=True, slots=True)
class Joined:
    socket_id: str
    first: bool
    payload: bytes  # member_added (when first), else b""


@dataclass(frozen=True, slots=True)
class Terminate:
    pass


@dataclass(frozen=True, slots=True)
class Native:
    op: str  # send | send_user | close | close_user | broadcast | block
    target: Any  # a connection id, a user id, a group name, a list of ids, None (all), an IP
    message: Any = None
    code: int = 1000
    reason: str = ""
    exclude: str | None = None
    origin: str = ""  # the node that sent it (it applied the operation itself already)


ClusterMessage = Deliver | Joined | Terminate | Native


def _id(value: str | None) -> bytes:
    raw = (value or "").encode()
    if len(raw) > MAX_ID:
        raise ValueError("socket id too long")
    return bytes((len(raw),)) + raw


def encode_deliver(payload: bytes, exclude: str | None = None) -> bytes:
    return b"D" + _id(exclude) + payload


def encode_joined(socket_id: str, first: bool, payload: bytes = b"") -> bytes:
    return b"J" + _id(socket_id) + (b"1" if first else b"0") + (payload if first else b"")


def encode_terminate() -> bytes:
    return b"T"


def encode_native(message: Native) -> bytes:
    body = [message.op, message.target, message.message, message.code, message.reason]
    body += [message.exclude, message.origin]
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    return b"N" + packed


def _take_id(data: bytes, at: int) -> tuple[str, int]:
    if at >= len(data):
        raise ClusterMessageError("truncated")
    size = data[at]
    end = at + 1 + size
    if end > len(data):
        raise ClusterMessageError("truncated id")
    try:
        return data[at + 1 : end].decode("ascii"), end
    except UnicodeDecodeError:
        raise ClusterMessageError("id is not ASCII") from None


def decode(data: bytes) -> ClusterMessage:
    """One message from its bytes; ``ClusterMessageError`` if it is not one of ours."""
    if not data:
        raise ClusterMessageError("empty")
    kind = data[0]
    if kind == DELIVER:
        exclude, at = _take_id(data, 1)
        return Deliver(data[at:], exclude or None)
    if kind == JOIN:
        socket_id, at = _take_id(data, 1)
        if at >= len(data) or data[at] not in b"01":
            raise ClusterMessageError("bad join flag")
        first = data[at] == 0x31
        return Joined(socket_id, first, data[at + 1 :] if first else b"")
    if kind == TERMINATE:
        if len(data) != 1:
            raise ClusterMessageError("bad terminate")
        return Terminate()
    if kind == NATIVE:
        try:
            body = msgpack.unpackb(data[1:], raw=False, strict_map_key=False)
        except Exception:  # msgpack raises several types for garbage
            raise ClusterMessageError("bad native body") from None
        if not isinstance(body, list) or len(body) != 7 or not isinstance(body[0], str):
            raise ClusterMessageError("bad native body")
        op, target, message, code, reason, exclude, origin = body
        if not isinstance(code, int) or not isinstance(reason, str):
            raise ClusterMessageError("bad native body")
        if exclude is not None and not isinstance(exclude, str):
            raise ClusterMessageError("bad native body")
        if not isinstance(origin, str):
            raise ClusterMessageError("bad native body")
        return Native(op, target, message, code, reason, exclude, origin)
    raise ClusterMessageError(f"unknown kind {kind}")
