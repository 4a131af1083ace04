"""Connection ids: unique, unguessable, and telling which node and worker own them.

The one id scheme of uvgate: native ``/ws`` connection ids and Pusher ``socket_id``s are
the same strings, made here.

Format ``"{node*100 + worker}.{random}"`` — digits, a dot, digits — so the same id
is a valid Pusher ``socket_id`` (``^\\d+\\.\\d+$``, which server libraries enforce).
The random part is 63 bits from the OS CSPRNG (``secrets``), unlike soketi and
Reverb, whose ids come from a non-cryptographic RNG. A cluster can route a message
to its owner by reading the prefix, without a lookup.
"""

from __future__ import annotations

import os
import struct

MAX_WORKERS = 100
MAX_NODE_ID = 9999


_POOL_IDS = 512  # ids drawn per getrandom() call
_unpack_pool = struct.Struct(f">{_POOL_IDS}Q").unpack  # 8 bytes each, big-endian


class IdFactory:
    __slots__ = ("_ids", "_prefix", "node_id", "worker")

    def __init__(self, node_id: int, worker: int = 0) -> None:
        if not 0 <= node_id <= MAX_NODE_ID:
            raise ValueError(f"node_id must be 0-{MAX_NODE_ID}")
        if not 0 <= worker < MAX_WORKERS:
            raise ValueError(f"worker must be 0-{MAX_WORKERS - 1}")
        self.node_id = node_id
        self.worker = worker
        self._prefix = f"{node_id * MAX_WORKERS + worker}."
        self._ids: list[str] = []  # made ahead, taken from the end

    def assign(self, node_id: int) -> None:
        """Take another node id (a cluster gives one at start, before any id is issued)."""
        if not 0 <= node_id <= MAX_NODE_ID:
            raise ValueError(f"node_id must be 0-{MAX_NODE_ID}")
        self.node_id = node_id
        self._prefix = f"{node_id * MAX_WORKERS + self.worker}."
        self._ids = []  # made with the old prefix

    def new(self) -> str:
        # The random part comes from the OS CSPRNG like ``secrets``, but drawn
        # 4 KiB at a time: one getrandom() syscall per 512 ids instead of one per
        # id, which was measurable on the per-connection path. The 512 ids are made
        # in one go too (one unpack, one loop), so taking one is a list pop. 63 bits
        # (the top bit cleared): the birthday bound is far beyond any registry size.
        ids = self._ids
        if not ids:
            prefix = self._prefix
            ids = self._ids = [
                prefix + str(n >> 1) for n in _unpack_pool(os.urandom(8 * _POOL_IDS))
            ]
        return ids.pop()


def owner_of(conn_id: str) -> tuple[int, int]:
    """(node_id, worker) that owns ``conn_id``; ValueError if it is not one of ours."""
    head, dot, tail = conn_id.partition(".")
    # isascii(): str.isdigit() also accepts other scripts' digits ("٣"), which int() takes.
    if not dot or not conn_id.isascii() or not head.isdigit() or not tail.isdigit():
        raise ValueError(f"not a connection id: {conn_id!r}")
    return divmod(int(head), MAX_WORKERS)
