"""The connection registry: id -> connection, user -> connections, group -> connections.

Every index is updated here and only here, so each close path (clean close, error,
abort, shutdown) leaves them consistent by calling ``remove`` once. Memory is the
reason for a few shapes below: a user with one connection (the common case) maps
straight to it, and only a second connection promotes the entry to a set; a
connection with no groups holds ``None`` rather than an empty set.

Sends and broadcasts go through the one fan-out (``gateway.fanout``): encoded and
framed once per codec, the same bytes written to every transport.

The registry knows a connection only by the small ``Member`` protocol below, so it can be
built and tested without sockets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from gateway.fanout import Peer, write_encoded


class Relay(Protocol):
    """Carries registry operations to the other nodes of a cluster (``gateway.cluster``)."""

    def owner(self, conn_id: str) -> str | None:
        """The node that holds ``conn_id`` when it is not this one (None: here or nobody)."""

    def forward(
        self,
        op: str,
        target: Any,
        message: Any = None,
        *,
        code: int = 1000,
        reason: str = "",
        exclude: str | None = None,
        node: str | None = None,
    ) -> None:
        """Apply ``op`` on the other nodes (or on ``node`` only)."""


class Member(Peer, Protocol):
    """What the registry needs of a connection."""

    user: str | None
    groups: set[str] | None

    def close(self, code: int = 1000, reason: str = "") -> None: ...

    def send(self, message: Any) -> bool: ...


C = TypeVar("C", bound=Member)  # the gateway's Connection


class Registry(Generic[C]):
    __slots__ = ("_conns", "_groups", "_users", "relay")

    def __init__(self) -> None:
        # In a cluster: sends, closes and broadcasts also reach the other nodes.
        self.relay: Relay | None = None
        self._conns: dict[str, C] = {}
        self._users: dict[str, C | set[C]] = {}
        self._groups: dict[str, set[C]] = {}

    # --- membership (called by the gateway) --------------------------------------
    def add(self, conn: C) -> None:
        self._conns[conn.id] = conn
        user = conn.user
        if user is not None:
            have = self._users.get(user)
            if have is None:
                self._users[user] = conn
            elif isinstance(have, set):
                have.add(conn)
            else:
                self._users[user] = {have, conn}

    def remove(self, conn: C) -> None:
        """Forget ``conn`` everywhere; safe to call twice."""
        if self._conns.pop(conn.id, None) is None:
            return
        user = conn.user
        if user is not None:
            have = self._users.get(user)
            if have is conn:
                del self._users[user]
            elif isinstance(have, set):
                have.discard(conn)
                if len(have) == 1:
                    self._users[user] = next(iter(have))
                elif not have:
                    del self._users[user]
        groups = conn.groups
        if groups:
            for name in groups:
                members = self._groups.get(name)
                if members is not None:
                    members.discard(conn)
                    if not members:
                        del self._groups[name]
            conn.groups = None

    # --- lookups ---------------------------------------------------------------
    def get(self, conn_id: str) -> C | None:
        return self._conns.get(conn_id)

    def __contains__(self, conn_id: object) -> bool:
        return conn_id in self._conns

    def __len__(self) -> int:
        return len(self._conns)

    def count(self, *, user: str | None = None, group: str | None = None) -> int:
        """Connections in total, of one user, or in one group."""
        if user is not None:
            have = self._users.get(user)
            return 0 if have is None else len(have) if isinstance(have, set) else 1
        if group is not None:
            return len(self._groups.get(group, ()))
        return len(self._conns)

    def __iter__(self) -> Iterator[C]:
        # A snapshot: callers may close connections while iterating.
        return iter(list(self._conns.values()))

    def ids(self) -> list[str]:
        return list(self._conns)

    def of_user(self, user: str) -> list[C]:
        have = self._users.get(user)
        if have is None:
            return []
        return list(have) if isinstance(have, set) else [have]

    def users(self) -> list[str]:
        return list(self._users)

    def members(self, group: str) -> list[C]:
        return list(self._groups.get(group, ()))

    def groups(self) -> list[str]:
        return list(self._groups)

    # --- groups ----------------------------------------------------------------
    def join(self, conn_or_id: C | str, group: str) -> bool:
        conn = self._resolve(conn_or_id)
        if conn is None:
            return False
        members = self._groups.get(group)
        if members is None:
            members = self._groups[group] = set()
        members.add(conn)
        if conn.groups is None:
            conn.groups = {group}
        else:
            conn.groups.add(group)
        return True

    def leave(self, conn_or_id: C | str, group: str) -> bool:
        conn = self._resolve(conn_or_id)
        if conn is None or not conn.groups or group not in conn.groups:
            return False
        conn.groups.discard(group)
        if not conn.groups:
            conn.groups = None
        members = self._groups.get(group)
        if members is not None:
            members.discard(conn)
            if not members:
                del self._groups[group]
        return True

    # --- sending ---------------------------------------------------------------
    # In a cluster (``relay`` set) every operation also reaches the other nodes: one by
    # connection id goes to the node the id names, the others to every node. The counts
    # returned are of this node's connections (the others answer nobody).
    def send(self, conn_id: str, message: Any) -> bool:
        """Encode ``message`` with the connection's codec and send it; False if unknown or
        closed here (True when it went to the node that holds the connection)."""
        conn = self._conns.get(conn_id)
        if conn is not None:
            return conn.send(message)
        node = self.relay.owner(conn_id) if self.relay is not None else None
        if node is None or self.relay is None:
            return False
        self.relay.forward("send", conn_id, message, node=node)
        return True

    def send_to_user(self, user: str, message: Any) -> int:
        if self.relay is not None:
            self.relay.forward("send_user", user, message)
        return write_encoded(self.of_user(user), message)

    def close(self, conn_id: str, code: int = 1000, reason: str = "") -> bool:
        conn = self._conns.get(conn_id)
        if conn is not None:
            conn.close(code, reason)
            return True
        node = self.relay.owner(conn_id) if self.relay is not None else None
        if node is None or self.relay is None:
            return False
        self.relay.forward("close", conn_id, code=code, reason=reason, node=node)
        return True

    def close_user(self, user: str, code: int = 1000, reason: str = "") -> int:
        if self.relay is not None:
            self.relay.forward("close_user", user, code=code, reason=reason)
        return self._close_user(user, code, reason)

    def _close_user(self, user: str, code: int, reason: str) -> int:
        conns = self.of_user(user)
        for conn in conns:
            conn.close(code, reason)
        return len(conns)

    def broadcast(
        self,
        target: str | Iterable[str] | None,
        message: Any,
        *,
        exclude: str | C | None = None,
    ) -> int:
        """Send ``message`` to a group (``str``), to ids (iterable), or to everyone (``None``).

        Returns the number of connections written to (on this node).
        """
        if self.relay is not None:
            ids = target if target is None or isinstance(target, str) else list(target)
            skip_id = exclude if exclude is None or isinstance(exclude, str) else exclude.id
            self.relay.forward("broadcast", ids, message, exclude=skip_id)
            target = ids
        return self._broadcast(target, message, exclude)

    def _broadcast(
        self, target: str | Iterable[str] | None, message: Any, exclude: str | C | None
    ) -> int:
        if target is None:
            conns: Iterable[C] = self._conns.values()
        elif isinstance(target, str):
            conns = self._groups.get(target, ())
        else:
            get = self._conns.get
            conns = [c for c in map(get, target) if c is not None]
        skip = self._conns.get(exclude) if isinstance(exclude, str) else exclude
        return write_encoded(conns, message, skip)

    def apply_relayed(
        self, op: str, target: Any, message: Any, code: int, reason: str, exclude: str | None
    ) -> int:
        """An operation another node relayed: applied to this node's connections only."""
        if op == "send" and isinstance(target, str):
            conn = self._conns.get(target)
            return int(conn is not None and conn.send(message))
        if op == "send_user" and isinstance(target, str):
            return write_encoded(self.of_user(target), message)
        if op == "close" and isinstance(target, str):
            conn = self._conns.get(target)
            if conn is not None:
                conn.close(code, reason)
            return int(conn is not None)
        if op == "close_user" and isinstance(target, str):
            return self._close_user(target, code, reason)
        if op == "broadcast" and (target is None or isinstance(target, str | list)):
            return self._broadcast(target, message, exclude)
        return 0

    def _resolve(self, conn_or_id: C | str) -> C | None:
        if isinstance(conn_or_id, str):
            return self._conns.get(conn_or_id)
        return conn_or_id if conn_or_id.id in self._conns else None
