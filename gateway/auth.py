"""The one authentication pipeline, used by every route (``/ws`` and ``/app/{key}``).

* ``verify`` asks the verifier about a message. A sync verifier answers inline (no task
  on the fast path); an async one gets the connection held: reading paused and the
  messages already parsed kept, in order, until the answer (``Connection.hold_for_auth``).
* The verifier sees the same ``ConnectionInfo`` whatever the route: path, query,
  headers (cookies, authorization), peer address. Routes keep ``conn.request`` for as
  long as a verifier may be asked.
* ``refuse`` is the one place a refusal is counted, charged to the peer's IP in the
  failure limiter and logged (one structured line, logger ``uvgate.auth``). Failures that
  are not the client's doing (the auth backend is down: 4503; a verifier bug: 1011) are
  logged and counted but not charged: an outage must not end in 429s for everyone.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

from gateway.connection import AUTHENTICATING, AWAITING_AUTH, OPEN, Connection
from gateway.ratelimit import FailureLimiter
from gateway.stats import Stats
from gateway.tasks import TaskGroup
from gateway.verifiers.base import AUTH_UNAVAILABLE, AuthFailed, ConnectionInfo, Identity, Verifier
from protocol import closecodes

log = logging.getLogger("uvgate.auth")

_NO_QUERY: Mapping[str, str] = MappingProxyType({})
# What a verifier that says ``needs_connection_info = False`` is passed.
_NO_INFO = ConnectionInfo("", "", 0, "", _NO_QUERY, _NO_QUERY, None)
# Refusals that are not the client's fault: never charged to its IP.
_NOT_CHARGED = frozenset({AUTH_UNAVAILABLE, closecodes.INTERNAL_ERROR})


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a route answers: a code and a reason, and whether the socket closes."""

    code: int
    reason: str
    close: bool = True


OnIdentity = Callable[[Connection, Identity], None]
OnRefusal = Callable[[Connection, Refusal], None]


def connection_info(conn: Connection) -> ConnectionInfo:
    """What a verifier may know about ``conn``: the same fields on every route."""
    request = conn.request
    if request is None:
        return ConnectionInfo(conn.id, conn.ip, 0, "", _NO_QUERY, _NO_QUERY, conn.subprotocol)
    query = _NO_QUERY
    if request.query:
        query = dict(parse_qsl(request.query, keep_blank_values=True))
    # A read-only view of the request's headers: no copy per authentication.
    return ConnectionInfo(
        conn.id,
        conn.ip,
        conn.peer[1],
        request.path,
        query,
        MappingProxyType(request.headers),
        conn.subprotocol,
    )


class AuthGate:
    def __init__(
        self, verifier: Verifier, limiter: FailureLimiter, stats: Stats, tasks: TaskGroup
    ) -> None:
        self.limiter = limiter
        self.stats = stats
        self.tasks = tasks
        # Async verifications under way, per verifier (by id): a verifier replaced by a
        # reload is closed only once its own are answered (``in_flight``).
        self._in_flight: dict[int, int] = {}
        self.use(verifier)

    def use(self, verifier: Verifier) -> None:
        """Judge the next messages with ``verifier`` (a reload); those already being
        judged finish with the one they started with."""
        self.verifier = verifier
        self.verifier_name: str = getattr(verifier, "name", type(verifier).__name__)
        # False only for the anonymous ``none`` verifier: no auth message is expected.
        self.requires_message: bool = getattr(verifier, "requires_message", True)
        # Building the ConnectionInfo (headers view, query, peer port) costs more than
        # an HMAC; a verifier that never reads it is passed an empty one.
        self.needs_info: bool = getattr(verifier, "needs_connection_info", True)

    def in_flight(self, verifier: Verifier) -> int:
        """Async verifications of ``verifier`` not yet answered."""
        return self._in_flight.get(id(verifier), 0)

    def retry_after(self, ip: str) -> int:
        """0 if ``ip`` may try to authenticate, else seconds until it may."""
        return self.limiter.retry_after(ip)

    # ------------------------------------------------------------ verifying
    def verify(
        self,
        conn: Connection,
        message: Mapping[str, Any],
        accept: OnIdentity,
        refuse: OnRefusal,
    ) -> None:
        """Ask the verifier; then ``accept(conn, identity)`` or ``refuse(conn, refusal)``.

        Neither is called if the connection is gone by the time an async verifier answers.
        """
        try:
            info = connection_info(conn) if self.needs_info else _NO_INFO
            result = self.verifier.verify(message, info)
        except Exception as exc:
            refuse(conn, self._refusal_for(exc))
            return
        if type(result) is Identity:
            accept(conn, result)  # the fast path: a sync verifier said yes
        elif inspect.isawaitable(result):
            conn.hold_for_auth()
            key = id(self.verifier)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            self.tasks.spawn(self._verify_async(conn, result, accept, refuse, key))
        else:
            self._answer(conn, result, accept, refuse)

    async def _verify_async(
        self,
        conn: Connection,
        pending: Awaitable[Identity],
        accept: OnIdentity,
        refuse: OnRefusal,
        key: int,
    ) -> None:
        try:
            try:
                identity = await pending
            finally:
                left = self._in_flight.pop(key, 1) - 1
                if left:
                    self._in_flight[key] = left
        except Exception as exc:
            if _waiting(conn):
                refuse(conn, self._refusal_for(exc))
            return
        self._answer(conn, identity, accept, refuse)
        conn.release_held()

    def _answer(
        self, conn: Connection, identity: object, accept: OnIdentity, refuse: OnRefusal
    ) -> None:
        if not _waiting(conn):
            return  # closed (or timed out) while an async verifier ran
        if not isinstance(identity, Identity):
            log.error(
                "verifier %s returned %r, not an Identity", self.verifier_name, type(identity)
            )
            refuse(conn, Refusal(closecodes.INTERNAL_ERROR, "internal error"))
            return
        accept(conn, identity)

    def _refusal_for(self, exc: Exception) -> Refusal:
        """AuthFailed refuses with its code; anything else is a bug: 1011, details logged only."""
        if isinstance(exc, AuthFailed):
            return Refusal(exc.code, exc.reason)
        log.error("verifier %s failed", self.verifier_name, exc_info=exc)
        return Refusal(closecodes.INTERNAL_ERROR, "internal error")

    # ------------------------------------------------------------- refusing
    def refuse(
        self,
        conn: Connection,
        refusal: Refusal,
        *,
        route: str,
        at_limit: Callable[[Refusal], Refusal] | None = None,
        **fields: Any,
    ) -> Refusal:
        """Count, charge and log one refusal; returns what the route must answer.

        ``at_limit`` turns the refusal into the one to send when this failure puts the
        IP over ``auth_fail_limit`` (a 4429, or closing a socket that would stay open).
        """
        ip = conn.ip
        failures = 0
        if refusal.code not in _NOT_CHARGED:
            failures = self.limiter.record_failure(ip)
            if at_limit is not None and self.limiter.retry_after(ip):
                refusal = at_limit(refusal)
        self.stats.auth_failed += 1
        log.warning(
            "auth refused",
            extra={
                "fields": {
                    "ip": ip,
                    "conn": conn.id,
                    "route": route,
                    **fields,
                    "code": refusal.code,
                    "reason": refusal.reason,
                    "action": "close" if refusal.close else "error",
                    "failures": failures,
                }
            },
        )
        return refusal


def escalate_to_rate_limit(refusal: Refusal) -> Refusal:
    """``at_limit`` policy of the native route: say 4429 so the client backs off."""
    if refusal.code == closecodes.AUTH_RATE_LIMITED:
        return refusal
    return Refusal(closecodes.AUTH_RATE_LIMITED, "too many failed attempts")


def close_instead(refusal: Refusal) -> Refusal:
    """``at_limit`` policy of a refusal that keeps the socket: past the limit, close it."""
    return replace(refusal, close=True)


def _waiting(conn: Connection) -> bool:
    """Still waiting for an answer: not authenticated elsewhere, not closed."""
    return conn.state is AWAITING_AUTH or conn.state is AUTHENTICATING or conn.state is OPEN
