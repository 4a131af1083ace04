"""The one fan-out: encode once, write the same bytes to many connections.

Used by the registry's broadcasts and by every Pusher delivery. A message is serialised
and framed once per codec in use (almost always one) and the same ``bytes`` object is
written to each transport. A connection that cannot take a frame (not open, or backed
up past ``max_send_buffer``) is skipped, and a slow consumer is closed with 4413 by its
own ``write_frame``, never here.

Iteration is over a snapshot: a write can close a slow consumer, which removes it from
the very set being iterated (a channel's subscribers, a group).

A read that carries several messages (a publisher's burst, client events sent
together) runs them inside a **batch** (``open_batch``/``close_batch``, by the reading
connection): each peer's frames are held in its cork and written in one call when the
read is done, so a subscriber that two publishes reach costs one ``write`` system call,
not two (what uWebSockets does with its per-socket cork). Nothing waits longer than the
read it came in, and the batch never spans an ``await``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from gateway.connstate import OPEN, State
from protocol.codecs import Codec, frame_message


class Peer(Protocol):
    """What the fan-out needs of a connection."""

    ctx: Any  # its stats count what the inline path writes
    id: str
    state: State
    paused: int
    cork: list[bytes] | None
    codec: Codec
    transport: Any

    def write_frame(self, frame: bytes) -> bool: ...

    def _flush(self) -> None: ...  # write what the cork holds, in one call


def open_batch(ctx: Any) -> list[Peer] | None:
    """Hold the fan-out's writes in the peers' corks until ``close_batch``; None (and
    nothing to close) when a batch is already open: the outer one writes."""
    if ctx.fanout_batch is not None:
        return None
    batch: list[Peer] = []
    ctx.fanout_batch = batch
    return batch


def close_batch(ctx: Any, batch: list[Peer] | None) -> None:
    """Write what each peer of ``batch`` was sent, one call per peer, in order."""
    if batch is not None:
        ctx.fanout_batch = None
        for peer in batch:
            peer._flush()


def write_all(peers: Iterable[Peer], frame: bytes, exclude: Peer | None = None) -> int:
    """Write ``frame`` to every peer but ``exclude``; return how many took it."""
    targets = tuple(peers)
    if not targets:
        return 0
    ctx = targets[0].ctx  # all peers of a fan-out share one gateway's context
    batch = ctx.fanout_batch
    sent = inline = 0
    for peer in targets:
        if peer is exclude:
            continue
        # The common case inline (open, reading, not inside its own read); anything else
        # takes write_frame's full path (slow consumer check, cork, closed), which counts.
        if peer.state is OPEN and not peer.paused and peer.cork is None:
            if batch is None:
                peer.transport.write(frame)
            else:
                peer.cork = [frame]
                batch.append(peer)
            inline += 1
        elif peer.write_frame(frame):
            sent += 1
    if inline:
        # Counted once per fan-out.
        stats = ctx.stats
        stats.ws_messages_sent += inline
        stats.ws_sent_bytes += inline * len(frame)
    return sent + inline


def write_encoded(peers: Iterable[Peer], message: Any, exclude: Peer | None = None) -> int:
    """Encode ``message`` once per codec of the peers (JSON, MessagePack) and write it."""
    targets = tuple(peers)
    if not targets:
        return 0
    ctx = targets[0].ctx
    batch = ctx.fanout_batch
    frames: dict[Codec, bytes] = {}
    last_codec: Codec | None = None
    frame = b""
    sent = 0
    inline = counted = 0  # messages and bytes the inline writes add to the counters
    for peer in targets:
        if peer is exclude:
            continue
        codec = peer.codec
        if codec is not last_codec:
            last_codec = codec
            cached = frames.get(codec)
            if cached is None:
                cached = frames[codec] = frame_message(codec, message)
            frame = cached
        if peer.state is OPEN and not peer.paused and peer.cork is None:
            if batch is None:
                peer.transport.write(frame)
            else:
                peer.cork = [frame]
                batch.append(peer)
            inline += 1
            counted += len(frame)
        elif peer.write_frame(frame):
            sent += 1
    if inline:
        stats = ctx.stats
        stats.ws_messages_sent += inline
        stats.ws_sent_bytes += counted
    return sent + inline
