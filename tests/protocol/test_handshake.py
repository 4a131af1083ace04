"""Opening handshake: request parsing, RFC 6455 4.2.1 checks, response bytes."""

from __future__ import annotations

import h11
import pytest
import wsproto
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.events import AcceptConnection
from wsproto.events import Request as WsRequest

from protocol.errors import HandshakeError
from protocol.handshake import (
    MAX_REQUEST_SIZE,
    Request,
    Upgrade,
    accept_key,
    accept_response,
    accept_response_for,
    check_upgrade,
    http_response,
    is_upgrade,
    parse_request,
    reject_response,
    upgrade_terms,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="

BASE_HEADERS = [
    ("Host", "server.example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Origin", "http://example.com"),
    ("Sec-WebSocket-Protocol", "chat, superchat"),
    ("Sec-WebSocket-Version", "13"),
]


def build(
    headers: list[tuple[str, str]] | None = None,
    *,
    request_line: str = "GET /chat?a=1&b=2 HTTP/1.1",
    drop: tuple[str, ...] = (),
    extra: list[tuple[str, str]] | None = None,
) -> bytes:
    hs = [(k, v) for k, v in (headers or BASE_HEADERS) if k.lower() not in drop]
    hs += extra or []
    lines = [request_line] + [f"{k}: {v}" for k, v in hs]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse(data: bytes) -> Request:
    result = parse_request(data)
    assert result is not None
    req, consumed = result
    assert consumed == len(data)
    return req


def status_of(data: bytes, **kw: object) -> int:
    with pytest.raises(HandshakeError) as info:
        check_upgrade(parse(data), **kw)  # type: ignore[arg-type]
    return info.value.status


# -- parse_request ------------------------------------------------------------------


def test_parse_rfc_example() -> None:
    req = parse(build())
    assert req.method == "GET"
    assert req.target == "/chat?a=1&b=2"
    assert req.path == "/chat"
    assert req.query == "a=1&b=2"
    assert req.version == "HTTP/1.1"
    assert req.keep_alive is True
    assert req.content_length == 0
    assert req.headers["sec-websocket-key"] == KEY
    assert req.headers["host"] == "server.example.com"
    assert is_upgrade(req)


def test_no_query() -> None:
    req = parse(build(request_line="GET /app/abc HTTP/1.1"))
    assert (req.path, req.query) == ("/app/abc", "")


def test_every_split_point() -> None:
    data = build()
    for i in range(len(data)):
        assert parse_request(data[:i]) is None, i
    assert parse_request(data) is not None
    assert parse_request(bytearray(data)) is not None


def test_pipelined_bytes_preserved() -> None:
    head = build()
    frame = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
    result = parse_request(head + frame)
    assert result is not None
    _, consumed = result
    assert consumed == len(head)
    assert (head + frame)[consumed:] == frame


def test_repeated_headers_joined_and_whitespace_trimmed() -> None:
    req = parse(build(extra=[("X-A", "  1 \t"), ("x-a", "2"), ("Sec-WebSocket-Protocol", "third")]))
    assert req.headers["x-a"] == "1, 2"
    assert req.headers["sec-websocket-protocol"] == "chat, superchat, third"


def test_keep_alive_rules() -> None:
    assert parse(build(extra=[("Connection", "close")])).keep_alive is False
    assert parse(build(request_line="GET / HTTP/1.0")).keep_alive is False
    req = parse(build(request_line="GET / HTTP/1.0", extra=[("Connection", "Keep-Alive")]))
    assert req.keep_alive is True


def test_content_length() -> None:
    assert parse(build(extra=[("Content-Length", "12")])).content_length == 12
    assert (
        parse(build(extra=[("Content-Length", "5"), ("Content-Length", "5")])).content_length == 5
    )


@pytest.mark.parametrize(
    "data",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello: fails fast
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\n: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\nEvil: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\rEvil: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET / XTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\r\n\r\nx\r\n\r\n",
    ],
)
def test_malformed(data: bytes) -> None:
    with pytest.raises(HandshakeError) as info:
        parse_request(data)
    assert info.value.status == 400
    assert info.value.reason == "malformed request"


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/0.9", "HTTP/3.0"])
def test_unsupported_http_version(version: str) -> None:
    with pytest.raises(HandshakeError) as info:
        parse_request(f"GET / {version}\r\nHost: x\r\n\r\n".encode())
    assert info.value.status == 505


def test_transfer_encoding_refused() -> None:
    with pytest.raises(HandshakeError) as info:
        parse_request(build(extra=[("Transfer-Encoding", "chunked")]))
    assert info.value.status == 501


def _post(*headers: str, version: str = "HTTP/1.1") -> bytes:
    lines = [f"POST /apps/1/events {version}", "Host: x", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@pytest.mark.parametrize(
    "value", ["chunked", "Chunked", " chunked ", "CHUNKED"], ids=["plain", "case", "ows", "upper"]
)
def test_chunked_allowed_when_asked(value: str) -> None:
    data = _post(f"Transfer-Encoding: {value}") + b"5\r\nhello\r\n0\r\n\r\n"
    result = parse_request(data, allow_chunked=True)
    assert result is not None
    request, used = result
    assert request.chunked and request.content_length == 0
    assert data[used:].startswith(b"5\r\n")  # the body stays for ChunkedDecoder
    assert not parse(_post()).chunked  # no Transfer-Encoding: not chunked


@pytest.mark.parametrize(
    ("headers", "version", "status"),
    [
        (["Transfer-Encoding: chunked", "Content-Length: 5"], "HTTP/1.1", 400),
        (["Transfer-Encoding: chunked"], "HTTP/1.0", 400),
        (["Transfer-Encoding: chunked, chunked"], "HTTP/1.1", 400),
        (["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], "HTTP/1.1", 400),
        (["Transfer-Encoding: chunked, gzip"], "HTTP/1.1", 400),  # chunked not final
        (["Transfer-Encoding: chunked,"], "HTTP/1.1", 400),
        (["Transfer-Encoding: "], "HTTP/1.1", 400),
        (["Transfer-Encoding: gzip, chunked"], "HTTP/1.1", 501),
        (["Transfer-Encoding: gzip"], "HTTP/1.1", 501),
        (["Transfer-Encoding: chunked;q=1"], "HTTP/1.1", 501),
        (["Transfer-Encoding: \xa0chunked"], "HTTP/1.1", 501),  # NBSP is not OWS
    ],
)
def test_ambiguous_or_unknown_transfer_codings(
    headers: list[str], version: str, status: int
) -> None:
    with pytest.raises(HandshakeError) as info:
        parse_request(_post(*headers, version=version), allow_chunked=True)
    assert info.value.status == status
    with pytest.raises(HandshakeError) as info:
        parse_request(_post(*headers, version=version))
    assert info.value.status == 501  # the default refuses every transfer coding, as before


def test_too_large() -> None:
    big = build(extra=[("X-Big", "a" * MAX_REQUEST_SIZE)])
    with pytest.raises(HandshakeError) as info:
        parse_request(big)
    assert info.value.status == 431
    # Incomplete but already over the limit: refused without waiting for more.
    with pytest.raises(HandshakeError) as info:
        parse_request(big[:MAX_REQUEST_SIZE])
    assert info.value.status == 431
    assert parse_request(big[: MAX_REQUEST_SIZE - 1]) is None
    # A custom bound.
    with pytest.raises(HandshakeError):
        parse_request(build(), max_size=100)
    data = build()
    assert parse_request(data, max_size=len(data)) is not None


def test_too_many_headers() -> None:
    extra = [(f"X-{i}", "v") for i in range(64 - len(BASE_HEADERS))]
    assert parse_request(build(extra=extra)) is not None
    with pytest.raises(HandshakeError) as info:
        parse_request(build(extra=[*extra, ("X-Last", "v")]))
    assert info.value.status == 431
    with pytest.raises(HandshakeError):
        parse_request(build(), max_headers=3)


# -- check_upgrade ------------------------------------------------------------------------


def test_valid_upgrade() -> None:
    up = check_upgrade(parse(build()))
    assert up == Upgrade(KEY, None, None, None)


def test_header_tokens_case_insensitive_and_lists() -> None:
    data = build(
        drop=("upgrade", "connection"),
        extra=[("UPGRADE", "WebSocket"), ("connection", "keep-alive, UPGRADE")],
    )
    assert check_upgrade(parse(data)).key == KEY


def test_method_must_be_get() -> None:
    assert status_of(build(request_line="POST /chat HTTP/1.1")) == 400


def test_http_10_refused() -> None:
    assert status_of(build(request_line="GET /chat HTTP/1.0")) == 400


@pytest.mark.parametrize("header", ["host", "upgrade", "connection", "sec-websocket-key"])
def test_missing_required_header(header: str) -> None:
    assert status_of(build(drop=(header,))) == 400


def test_wrong_upgrade_and_connection_values() -> None:
    assert status_of(build(drop=("upgrade",), extra=[("Upgrade", "h2c")])) == 400
    assert status_of(build(drop=("connection",), extra=[("Connection", "keep-alive")])) == 400
    assert not is_upgrade(parse(build(drop=("upgrade",))))


@pytest.mark.parametrize(
    "key",
    [
        "not base64 at all!!!!!==",
        "dGhlIHNhbXBsZSBub25jZQ",  # no padding
        "dGhlIHNhbXBsZSBub25jZQ==x",
        "YWJj",  # 3 bytes
        "dGhlIHNhbXBsZSBub25jZTE=",  # 17 bytes
        "dGhlIHNhbXBsZSBub25j",  # 15 bytes
        "",
    ],
)
def test_bad_key(key: str) -> None:
    assert status_of(build(drop=("sec-websocket-key",), extra=[("Sec-WebSocket-Key", key)])) == 400


@pytest.mark.parametrize("version", [None, "8", "12", "14", "13, 8"])
def test_bad_version_is_426_with_header(version: str | None) -> None:
    extra = [] if version is None else [("Sec-WebSocket-Version", version)]
    with pytest.raises(HandshakeError) as info:
        check_upgrade(parse(build(drop=("sec-websocket-version",), extra=extra)))
    assert info.value.status == 426
    assert info.value.headers == (("Sec-WebSocket-Version", "13"),)
    response = reject_response(info.value)
    assert response.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"\r\nSec-WebSocket-Version: 13\r\n" in response


def test_origin() -> None:
    req = parse(build())
    assert check_upgrade(req, allowed_origins={"http://example.com"}).key == KEY
    assert check_upgrade(req, allowed_origins={"*"}).key == KEY
    assert check_upgrade(req, allowed_origins=None).key == KEY
    assert status_of(build(), allowed_origins={"https://other.example"}) == 403
    assert status_of(build(), allowed_origins=()) == 403
    # An allowlist requires the header.
    assert status_of(build(drop=("origin",)), allowed_origins={"http://example.com"}) == 403
    assert check_upgrade(parse(build(drop=("origin",))), allowed_origins={"*"}).key == KEY


def test_subprotocol_selection_follows_server_preference() -> None:
    req = parse(build())
    assert check_upgrade(req, subprotocols=["superchat", "chat"]).subprotocol == "superchat"
    assert check_upgrade(req, subprotocols=["chat", "superchat"]).subprotocol == "chat"
    assert check_upgrade(req, subprotocols=["other"]).subprotocol is None
    assert check_upgrade(req).subprotocol is None
    no_offer = parse(build(drop=("sec-websocket-protocol",)))
    assert check_upgrade(no_offer, subprotocols=["chat"]).subprotocol is None


@pytest.mark.parametrize("subprotocols", [(), ("superchat",)])
@pytest.mark.parametrize("deflate", [False, True])
def test_upgrade_terms_are_the_fields_of_check_upgrade(
    subprotocols: tuple[str, ...], deflate: bool
) -> None:
    # The connection uses the tuple form (no Upgrade object per socket): same answer,
    # same 101 bytes, same refusals.
    req = parse(build(extra=[("Sec-WebSocket-Extensions", "permessage-deflate")]))
    up = check_upgrade(req, subprotocols=subprotocols, deflate=deflate)
    terms = upgrade_terms(req, subprotocols, None, deflate)
    assert terms == (up.key, up.subprotocol, up.deflate, up.response_extensions)
    key, subprotocol, _, extensions = terms
    assert accept_response_for(key, subprotocol, extensions) == accept_response(up)
    with pytest.raises(HandshakeError) as info:
        upgrade_terms(parse(build(drop=("host",))))
    assert info.value.status == 400


def test_deflate_negotiation_in_upgrade() -> None:
    data = build(extra=[("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")])
    up = check_upgrade(parse(data), deflate=True)
    assert up.deflate is not None
    assert up.response_extensions == "permessage-deflate"
    assert b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n" in accept_response(up)
    # Not enabled on the server: ignored.
    assert check_upgrade(parse(data)).deflate is None
    # Only unknown extensions offered.
    other = build(extra=[("Sec-WebSocket-Extensions", "x-webkit-deflate-frame")])
    assert check_upgrade(parse(other), deflate=True).response_extensions is None


# -- responses -------------------------------------------------------------------------------


def test_accept_key_rfc_example() -> None:
    # RFC 6455 1.3
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_accept_response_bytes() -> None:
    up = check_upgrade(parse(build()), subprotocols=["chat"])
    assert accept_response(up, [("X-Node", "n1")]) == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Sec-WebSocket-Protocol: chat\r\n"
        b"X-Node: n1\r\n"
        b"\r\n"
    )


def test_header_injection_refused() -> None:
    up = check_upgrade(parse(build()))
    with pytest.raises(ValueError):
        accept_response(up, [("X-A", "a\r\nSet-Cookie: x")])
    with pytest.raises(ValueError):
        http_response(400, headers=[("X-A\r\n", "a")])


@pytest.mark.parametrize("subprotocol", [None, "chat"])
@pytest.mark.parametrize("deflate", [False, True])
def test_wsproto_client_accepts_our_response(subprotocol: str | None, deflate: bool) -> None:
    """Drive wsproto's client: its request through our parser, our 101 back into it."""
    from wsproto.extensions import PerMessageDeflate

    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    request = client.send(
        WsRequest(
            host="localhost",
            target="/app/key?protocol=7",
            subprotocols=["chat", "superchat"],
            extensions=[PerMessageDeflate()] if deflate else [],
        )
    )
    req = parse(request)
    assert req.path == "/app/key"
    up = check_upgrade(req, subprotocols=[subprotocol] if subprotocol else [], deflate=deflate)
    client.receive_data(accept_response(up))
    events = list(client.events())
    assert len(events) == 1
    assert isinstance(events[0], AcceptConnection)
    assert events[0].subprotocol == subprotocol
    assert bool(events[0].extensions) == deflate


def test_h11_parses_our_responses() -> None:
    for data, status in [
        (http_response(200, b"hello"), 200),
        (http_response(404, b"nope", keep_alive=True), 404),
        (reject_response(HandshakeError(403, "origin not allowed")), 403),
        (http_response(204), 204),
    ]:
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        conn.send(h11.EndOfMessage())
        conn.receive_data(data)
        resp = conn.next_event()
        assert isinstance(resp, h11.Response)
        assert resp.status_code == status
        body = b""
        while True:
            ev = conn.next_event()
            if isinstance(ev, h11.Data):
                body += ev.data
            else:
                assert isinstance(ev, h11.EndOfMessage)
                break
        if status == 403:
            assert body == b"origin not allowed\n"


def test_http_response_shape() -> None:
    assert http_response(200, b"ok") == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 2\r\nConnection: close\r\n\r\nok"
    )
    assert (
        http_response(404, keep_alive=True)
        == b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    )
    assert http_response(204, b"ignored").startswith(b"HTTP/1.1 204 No Content\r\n")
    assert b"Content-Length" not in http_response(204)
    assert b"Content-Type: application/json" in http_response(
        200, b"{}", content_type="application/json"
    )


def test_our_parser_accepts_what_h11_clients_send() -> None:
    conn = h11.Connection(h11.CLIENT)
    data = conn.send(
        h11.Request(
            method="GET",
            target="/x?y=1",
            headers=[("Host", "example"), ("Upgrade", "websocket"), ("Connection", "Upgrade")],
        )
    )
    assert data is not None
    req = parse(data)
    assert (req.path, req.query, req.headers["upgrade"]) == ("/x", "y=1", "websocket")


def test_leading_empty_lines_are_skipped() -> None:
    data = b"\r\n\r\n" + build()
    result = parse_request(data)
    assert result is not None
    req, consumed = result
    assert consumed == len(data)
    assert req.path == "/chat"
    assert parse_request(b"\r\n\r\n") is None
    assert parse_request(b"\r\n") is None
    assert parse_request(b"\r") is None


def test_obs_text_in_values_is_kept() -> None:
    req = parse(build(extra=[("X-Name", "caf\xe9\tbar")]))
    assert req.headers["x-name"] == "caf\xe9\tbar"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_only_raises_handshake_error(data: bytes) -> None:
    try:
        parse_request(data)
        parse_request(build()[:40] + data)
    except HandshakeError as exc:
        assert exc.status in (400, 431, 501, 505)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.text("abcXYZ-_", min_size=1, max_size=8), st.text("abc ;,=/", max_size=10)),
        max_size=10,
    )
)
def test_random_headers_survive(extra: list[tuple[str, str]]) -> None:
    req = parse(build(extra=extra))
    for name, value in extra:
        assert value.strip(" ") in req.headers[name.lower()]


# -- regressions from fuzzing (issue 11) -----------------------------------------------------


@pytest.mark.parametrize("bad", ["\x80", "\xff", "\xe9", "\x85"])
def test_non_ascii_key_is_400_not_value_error(bad: str) -> None:
    # Crash 1: a2b_base64() raises ValueError (not binascii.Error) on a non-ASCII str.
    data = (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
        + bad.encode("latin-1")
        + b"AAAAAAAAAAAAAAAAAAAAA==\r\n\r\n"
    )
    assert status_of(data) == 400


def test_superscript_window_bits_in_upgrade_declines_deflate() -> None:
    # Crash 2 through the handshake: the offer is declined, the upgrade still succeeds.
    for value in ("\xb9", "\xb2", "1\xb9", '"\xb3"'):
        offer = f"permessage-deflate; client_max_window_bits={value}"
        data = build(extra=[("Sec-WebSocket-Extensions", offer)])
        upgrade = check_upgrade(parse(data), deflate=True)
        assert upgrade.deflate is None and upgrade.response_extensions is None
