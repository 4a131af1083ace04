"""Target ``handshake``: parse_request (pipelined, both Transfer-Encoding modes),
check_upgrade, accept_response / reject_response.

Declared errors: ``HandshakeError`` (parse_request, check_upgrade, ChunkedDecoder), with
a status the server has a reason phrase for. Properties:

* a request that parses returns None on every shorter prefix of its head (incremental
  parsing never answers early) and its fields are consistent;
* ``allow_chunked=True`` differs from the default only for Transfer-Encoding requests;
* a 101 response is one well-formed head (no bare LF, no injected line) carrying the
  right Sec-WebSocket-Accept, and a negotiated permessage-deflate answer re-negotiates
  to the same parameters; every refusal renders as a response with its status.

Pipelined requests are parsed one after the other like the gateway does, bodies
(Content-Length or chunked) skipped, at most ``MAX_REQUESTS`` per input.
"""

from __future__ import annotations

from protocol.chunked import ChunkedDecoder
from protocol.deflate import negotiate
from protocol.errors import HandshakeError
from protocol.handshake import (
    REASONS,
    Request,
    accept_key,
    accept_response,
    check_upgrade,
    is_upgrade,
    parse_request,
    reject_response,
)

MAX_REQUESTS = 300  # crash 3 of issue 11 pipelines 198
SUBPROTOCOLS = ("chat", "uvgate.json")
ORIGINS = (None, frozenset({"http://example.com"}))


def _refusal(exc: HandshakeError) -> None:
    assert exc.status in REASONS and exc.status >= 400, exc.status
    response = reject_response(exc)
    assert response.startswith(b"HTTP/1.1 %d " % exc.status)
    head, sep, _body = response.partition(b"\r\n\r\n")
    assert sep and b"\n" not in head.replace(b"\r\n", b"")


def _consistent(req: Request, head: bytes) -> None:
    assert req.version in ("HTTP/1.1", "HTTP/1.0")
    assert req.content_length >= 0
    assert all(name == name.lower() for name in req.headers)
    assert req.target == (req.path + "?" + req.query if "?" in req.target else req.path)
    # Incremental: no shorter prefix of the head parses (the last byte completes it).
    assert parse_request(head[:-1], allow_chunked=True) is None


def _upgrade(req: Request) -> None:
    is_upgrade(req)
    for deflate in (False, True):
        for origins in ORIGINS:
            try:
                upgrade = check_upgrade(
                    req, subprotocols=SUBPROTOCOLS, allowed_origins=origins, deflate=deflate
                )
            except HandshakeError as exc:
                _refusal(exc)
                continue
            response = accept_response(upgrade)
            assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
            assert response.endswith(b"\r\n\r\n") and response.count(b"\r\n\r\n") == 1
            assert response.count(b"\n") == response.count(b"\r\n")
            accept = b"\r\nSec-WebSocket-Accept: " + accept_key(upgrade.key).encode() + b"\r\n"
            assert accept in response
            if upgrade.deflate is not None:
                assert deflate and upgrade.response_extensions is not None
                again = negotiate(upgrade.response_extensions)
                assert again == (upgrade.deflate, upgrade.response_extensions)


def _parse(buf: bytes, allow_chunked: bool) -> tuple[Request, int] | HandshakeError | None:
    try:
        return parse_request(buf, allow_chunked=allow_chunked)
    except HandshakeError as exc:
        _refusal(exc)
        return exc


def check(data: bytes) -> None:
    buf = data
    for _ in range(MAX_REQUESTS):
        strict = _parse(buf, False)
        lenient = _parse(buf, True)
        if isinstance(strict, HandshakeError) and isinstance(lenient, tuple):
            # Only a Transfer-Encoding request may differ between the two modes.
            assert strict.status == 501 and lenient[0].chunked
        elif isinstance(strict, tuple):
            assert isinstance(lenient, tuple) and lenient[1] == strict[1]
            assert not lenient[0].chunked and lenient[0] == strict[0]
        elif strict is None:
            assert lenient is None
        if not isinstance(lenient, tuple):
            return
        req, used = lenient
        _consistent(req, buf[:used])
        _upgrade(req)
        buf = buf[used:]
        if req.chunked:
            decoder = ChunkedDecoder(max_body=65536)
            try:
                done = decoder.feed(buf)
            except HandshakeError as exc:
                _refusal(exc)
                return
            if done is None:
                return
            body, buf = done
            assert len(body) <= 65536
        elif req.content_length:
            if len(buf) < req.content_length:
                return
            buf = buf[req.content_length :]
