"""Target ``handshake_diff``: the C request-head scan against the Python path.

``protocol.speedups.parse_head`` is a fast path: it may answer only a head that the
Python path (``protocol.handshake._parse_head_py``, the reference) accepts, with
exactly what that returns (same strings, same header order), and returns None for
anything else, which parse_request then hands to the Python path. Property: for
every input and both a generous and a tight ``max_headers``, the C answer is None
or equal to the Python answer. The input is a head (a blank line is added when it
has none), read from bytes and from a bytearray, after its leading empty lines as
parse_request skips them.

No error is declared: the C function returns None for what it does not accept, so
any exception from it is a finding. Without the extension (built without a compiler)
there is nothing to compare.
"""

from __future__ import annotations

from typing import Any

from protocol import handshake
from protocol.errors import HandshakeError

try:
    from protocol.speedups import parse_head
except ImportError:  # pragma: no cover - built without a compiler
    parse_head = None


def _reference(buf: bytes, start: int, end: int, max_headers: int) -> Any:
    try:
        return handshake._parse_head_py(buf, start, end, max_headers)
    except HandshakeError:
        return None


def check(data: bytes) -> None:
    if parse_head is None:
        return
    end = data.find(b"\r\n\r\n")
    if end < 0:
        data += b"\r\n\r\n"
        end = data.find(b"\r\n\r\n")
    start = 0
    while data.startswith(b"\r\n", start) and start < end:
        start += 2
    for max_headers in (64, 3):
        expected = _reference(data, start, end, max_headers)
        for buf in (data, bytearray(data)):
            got = parse_head(buf, start, end + 2, max_headers)
            if got is None:
                continue
            assert expected is not None, f"C accepted what Python refuses: {got!r}"
            assert got[:3] == expected[:3], (got, expected)
            assert list(got[3].items()) == list(expected[3].items()), (got, expected)
            assert all(type(s) is str for s in (*got[:3], *got[3], *got[3].values()))
