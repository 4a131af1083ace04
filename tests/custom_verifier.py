"""Verifiers loaded by dotted path in tests/gateway/verifiers/test_verifiers.py."""

from __future__ import annotations

import asyncio

from gateway.verifiers import AuthFailed, BaseVerifier, Identity, token_of


class PrefixVerifier:
    """A minimal class: no ``name``, no ``requires_message``, one required option."""

    def __init__(self, *, prefix, code=4401):
        self.prefix = prefix
        self.code = code

    def verify(self, message, conn):
        token = token_of(message)
        if not token.startswith(self.prefix):
            raise AuthFailed(self.code, "wrong prefix")
        return Identity(token[len(self.prefix) :])


class Named(BaseVerifier):
    name = "named"

    def verify(self, message, conn):
        return Identity("named")


class Slotted:
    """Cannot take the attributes the loader fills in."""

    __slots__ = ()

    def verify(self, message, conn):
        return Identity("x")


class Exploding:
    def __init__(self, **options):
        raise TypeError("bad things")

    def verify(self, message, conn):  # pragma: no cover
        raise AssertionError


def verify_sync(message, conn):
    return Identity("sync-" + token_of(message))


async def verify_async(message, conn):
    await asyncio.sleep(0)
    if token_of(message) != "good":
        raise AuthFailed(4403, "nope")
    return Identity("async-" + conn.connection_id)


instance = PrefixVerifier(prefix="obj-")
NOT_A_VERIFIER = 42
