"""Target ``codecs``: the JSON (orjson) and msgpack message codecs.

Declared error: ``CodecError``, from decode and from encode. Property: whatever decodes
and re-encodes decodes again to an equal value (NaN compared as NaN), so what the gateway
echoes or relays is what it read.
"""

from __future__ import annotations

import math
from typing import Any

from protocol.codecs import JSON, MSGPACK, CodecError

from .reader import Reader


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    return type(a) is type(b) and a == b


def check(data: bytes) -> None:
    reader = Reader(data)
    mode = reader.byte()
    codec = MSGPACK if mode & 1 else JSON
    payload = reader.rest()
    source: str | bytes = payload
    if mode & 2:
        source = payload.decode("utf-8", "surrogateescape")  # lone surrogates included
    try:
        value = codec.decode(source)
    except CodecError:
        return
    try:
        encoded = codec.encode(value)
    except CodecError:
        return  # e.g. JSON nested deeper than orjson writes (254 levels)
    assert _same(codec.decode(encoded), value)
