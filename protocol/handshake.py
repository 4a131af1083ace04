"""The HTTP/1.1 upgrade handshake (RFC 6455 4, RFC 9112), hand-rolled and sans-I/O.

``parse_request`` turns the bytes of one request head into a ``Request``;
``check_upgrade`` decides whether it is an acceptable WebSocket opening
handshake; ``accept_response`` / ``reject_response`` build the reply bytes.
No per-byte loops: the head is decoded once as latin-1, validated by two
anchored regular expressions (request line, header block) in C, and cut with
``str.split``/``partition``.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .deflate import DeflateParams, negotiate
from .errors import HandshakeError
from .purepy import FORCED

# The C scan of a plain valid request head (protocol/speedups.c), beside the Python
# path below, which stays the reference: the C answers only heads it accepts and
# returns None for anything else, so every refusal is decided here. Not used by the
# pure-Python twin (UVGATE_PURE_PYTHON=1) or where it was not built.
_parse_head: Callable[[bytes | bytearray, int, int, int], Any] | None = None
if not FORCED:
    try:
        from .speedups import parse_head as _parse_head  # type: ignore[no-redef]
    except ImportError:  # pragma: no cover - built without a compiler
        pass
USES_SPEEDUPS = _parse_head is not None

# SHA-1 of the accept key (RFC 6455 4.2.2: not a security use) with CPython's own
# implementation where the interpreter has it: for one 60-byte input, OpenSSL's EVP
# context set-up and copies cost more than the hash (~1,500 instructions a connection).
_sha1: Callable[[bytes], Any]
try:
    from _sha1 import sha1 as _sha1  # type: ignore[no-redef]
except ImportError:  # pragma: no cover - an interpreter built without it
    _sha1 = hashlib.sha1

MAX_REQUEST_SIZE = 8192
MAX_HEADERS = 64

# RFC 6455 1.3 / 4.2.2: the GUID appended to the key before hashing.
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

REASONS: dict[int, str] = {
    101: "Switching Protocols",
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    426: "Upgrade Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}

# RFC 9110 5.6.2: tchar; a request must start with one (fail fast on garbage).
_TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_METHOD_START = frozenset(_TCHARS.encode())
_TCHAR_CLASS = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
_REQUEST_LINE = re.compile(rf"([{_TCHAR_CLASS}]+) ([\x21-\x7e\x80-\xff]+) (HTTP/[0-9]\.[0-9])")
_FIELD_NAME = re.compile(rf"[{_TCHAR_CLASS}]+")
# RFC 9110 5.5: a field line's characters: HTAB, SP, visible ASCII and obs-text. What
# ``bytes.translate`` leaves of a header block once these are deleted must be its CRLFs.
_FIELD_BYTES = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])
# Field names every browser and client library sends, lower-cased: all valid tokens.
_COMMON_NAMES = frozenset(
    {
        "host",
        "upgrade",
        "connection",
        "origin",
        "user-agent",
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "pragma",
        "cookie",
        "authorization",
        "content-length",
        "content-type",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "x-forwarded-for",
    }
)


# Those names as clients spell them ("Sec-WebSocket-Key", "host"), mapped to lower case:
# one dict lookup per field line instead of a ``str.lower`` call and a set lookup; the
# token regex runs only for other names.
def _spellings(name: str) -> set[str]:
    title = "-".join(part.capitalize() for part in name.split("-"))
    return {name, title, title.replace("Websocket", "WebSocket")}


_COMMON_SPELLINGS = {spelled: name for name in _COMMON_NAMES for spelled in _spellings(name)}
_HTTP_VERSIONS = frozenset({"HTTP/1.1", "HTTP/1.0"})
_END = b"\r\n\r\n"
_VERSION_HEADERS = (("Sec-WebSocket-Version", "13"),)


def _malformed() -> HandshakeError:
    return HandshakeError(400, "malformed request")


def _too_large() -> HandshakeError:
    return HandshakeError(431, "request too large")


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed HTTP request head."""

    method: str
    target: str  # raw request-target
    path: str  # target up to '?', not percent-decoded
    query: str  # raw query string without '?', '' if none
    headers: Mapping[str, str]  # lower-cased names; repeats joined with ", "
    version: str  # "HTTP/1.1" or "HTTP/1.0"
    keep_alive: bool
    content_length: int  # 0 when chunked

    @property
    def chunked(self) -> bool:
        """The body is ``Transfer-Encoding: chunked`` (decode it with
        ``protocol.chunked.ChunkedDecoder``). Only ``parse_request(...,
        allow_chunked=True)`` returns such a request; any other transfer coding is
        refused there, so the header's presence is the answer (no slot, no cost)."""
        return "transfer-encoding" in self.headers


# Hot-path constructor: set the frozen slots through their member descriptors,
# which skips the per-field object.__setattr__ of a frozen dataclass __init__
# (1.1 us -> 0.5 us per request); the instance is exactly as frozen.
_new = object.__new__
(
    _set_method,
    _set_target,
    _set_path,
    _set_query,
    _set_headers,
    _set_version,
    _set_keep_alive,
    _set_content_length,
) = (
    Request.__dict__[name].__set__
    for name in (
        "method",
        "target",
        "path",
        "query",
        "headers",
        "version",
        "keep_alive",
        "content_length",
    )
)


def _request(
    method: str,
    target: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    version: str,
    keep_alive: bool,
    content_length: int,
) -> Request:
    req = _new(Request)
    _set_method(req, method)
    _set_target(req, target)
    _set_path(req, path)
    _set_query(req, query)
    _set_headers(req, headers)
    _set_version(req, version)
    _set_keep_alive(req, keep_alive)
    _set_content_length(req, content_length)
    return req


def _has_token(value: str, token: str) -> bool:
    """Case-insensitive membership of ``token`` in a comma-separated list (RFC 9110 5.6.1)."""
    value = value.lower()
    if value == token:
        return True
    if "," not in value:  # one token: no list to walk (the usual case)
        return value.strip(" \t") == token
    # A list, not any(generator): a generator cannot live in a compiled C function.
    return token in [part.strip(" \t") for part in value.split(",")]


def parse_request(
    buf: bytes | bytearray,
    *,
    max_size: int = MAX_REQUEST_SIZE,
    max_headers: int = MAX_HEADERS,
    allow_chunked: bool = False,
) -> tuple[Request, int] | None:
    """Parse a request head from the start of ``buf``.

    Returns None while the head is incomplete (and still under ``max_size``),
    else ``(request, consumed)`` where ``consumed`` counts the bytes up to and
    including the blank line; a body or pipelined bytes stay for the caller.

    ``allow_chunked``: False (the default) refuses any Transfer-Encoding with 501.
    True accepts ``Transfer-Encoding: chunked`` on HTTP/1.1 without Content-Length
    (``request.chunked``; the caller decodes the body with
    ``protocol.chunked.ChunkedDecoder``); see ``_transfer_coding`` for the rest.
    """
    start = 0
    if buf[:1] == b"\r":
        # RFC 9112 2.2: ignore empty lines before the request-line (some
        # clients send a stray CRLF after a previous request's body).
        while buf.startswith(b"\r\n", start):
            start += 2
    end = buf.find(_END, start, max_size)
    if end < 0:
        n = len(buf)
        if n >= max_size:
            raise _too_large()
        # Fail fast on garbage instead of buffering it to max_size: a request
        # line starts with a method token (RFC 9112 3).
        if n > start and buf[start] not in _METHOD_START and buf[start:] != b"\r":
            raise _malformed()
        return None
    consumed = end + 4
    if consumed > max_size:
        raise _too_large()
    parsed = None if _parse_head is None else _parse_head(buf, start, end + 2, max_headers)
    if parsed is None:
        parsed = _parse_head_py(buf, start, end, max_headers)
    method, target, version, headers = parsed
    te = headers.get("transfer-encoding")
    if te is not None:
        # The one switch for chunked request bodies: callers that decode them pass
        # allow_chunked=True; everyone else keeps the 501 (a handshake has no body).
        if not allow_chunked:
            raise HandshakeError(501, "transfer-encoding not supported")
        _transfer_coding(te, version, "content-length" in headers)
    content_length = 0
    cl = headers.get("content-length")
    if cl is not None:
        # RFC 9112 6.3: repeated identical values are acceptable, others are not.
        values = {v.strip(" \t") for v in cl.split(",")}
        if len(values) != 1:
            raise _malformed()
        (cl,) = values
        if not cl.isdigit() or not cl.isascii() or len(cl) > 18:
            raise _malformed()
        content_length = int(cl)

    conn = headers.get("connection")
    if version == "HTTP/1.1":
        keep_alive = conn is None or not _has_token(conn, "close")
    else:
        keep_alive = conn is not None and _has_token(conn, "keep-alive")

    path, _, query = target.partition("?")
    return _request(
        method, target, path, query, headers, version, keep_alive, content_length
    ), consumed


def _parse_head_py(
    buf: bytes | bytearray, start: int, end: int, max_headers: int
) -> tuple[str, str, str, dict[str, str]]:
    """The request line and field lines of ``buf[start:end + 2]``, or HandshakeError:
    the reference for ``speedups.parse_head`` and the path of every refusal."""
    # RFC 9110 5.5: field values are historically ISO-8859-1; latin-1 never fails
    # and maps bytes 1:1, so validation below works on the decoded text. The
    # head keeps its last CRLF so every line, the request line included, ends
    # with one.
    raw = bytes(buf[start : end + 2])
    head = raw.decode("latin-1")
    line_end = head.find("\r\n")
    # RFC 9112 3: request-line = method SP request-target SP HTTP-version; no
    # control characters, no bare CR/LF (a smuggling vector, RFC 9112 2.2).
    line = _REQUEST_LINE.fullmatch(head, 0, line_end)
    if line is None:
        version = head[:line_end].rpartition(" ")[2]
        if version.startswith("HTTP/") and len(version) == 8 and version[5] != "1":
            raise HandshakeError(505, "http version not supported")
        raise _malformed()
    method, target, version = line.groups()
    if version not in _HTTP_VERSIONS:
        if version[5] != "1":
            raise HandshakeError(505, "http version not supported")
        raise _malformed()
    lines = head.count("\r\n", line_end + 2)
    if lines > max_headers:
        raise HandshakeError(431, "too many headers")
    # The whole header block in one C pass: every character a field character (RFC
    # 9110 5.5) but the line ends, and those only CRLF pairs (no bare CR or LF, a
    # smuggling vector: RFC 9112 2.2). With as many CRLFs in the block as CR and LF
    # bytes left, every CR is followed by its LF.
    if raw.translate(None, _FIELD_BYTES) != b"\r\n" * (lines + 1):
        raise _malformed()

    headers: dict[str, str] = {}
    for field_line in head[line_end + 2 : -2].split("\r\n") if lines else ():
        name, colon, value = field_line.partition(":")
        # RFC 9110 5.1: a token, then the colon (RFC 9112 5.1: no space before it).
        if not colon:
            raise _malformed()
        lowered = _COMMON_SPELLINGS.get(name)
        if lowered is None:
            if _FIELD_NAME.fullmatch(name) is None:
                raise _malformed()
            lowered = name.lower()
        name = lowered
        value = value.strip(" \t")
        old = headers.get(name)
        # RFC 9110 5.3: repeated fields combine into one comma-separated list.
        headers[name] = value if old is None else old + ", " + value

    return method, target, version, headers


def _transfer_coding(te: str, version: str, has_content_length: bool) -> None:
    """Accept exactly ``Transfer-Encoding: chunked`` (RFC 9112 6.1, 7), else raise.

    400 when the framing is ambiguous, the classic request-smuggling shapes: chunked
    not the final coding or applied twice, an empty list element, Transfer-Encoding on
    HTTP/1.0 or together with Content-Length (6.1 lets a server refuse those, 6.3
    item 3). 501 for any other coding (gzip, ...): this server decodes only chunked.
    """
    codings = [c.strip(" \t").lower() for c in te.split(",")]
    if version != "HTTP/1.1" or has_content_length or "" in codings:
        raise _malformed()
    if codings == ["chunked"]:
        return
    if "chunked" in codings and (codings[-1] != "chunked" or codings.count("chunked") > 1):
        raise _malformed()
    raise HandshakeError(501, "transfer-encoding not supported")


@dataclass(frozen=True, slots=True)
class Upgrade:
    """An accepted opening handshake: what the 101 response must say."""

    key: str
    subprotocol: str | None
    deflate: DeflateParams | None
    response_extensions: str | None


# Same descriptor shortcut as for Request: one Upgrade per accepted connection.
_set_key, _set_subprotocol, _set_deflate, _set_extensions = (
    Upgrade.__dict__[name].__set__
    for name in ("key", "subprotocol", "deflate", "response_extensions")
)


def is_upgrade(req: Request) -> bool:
    """Cheap test: does the request ask for a WebSocket (Upgrade: websocket)?"""
    up = req.headers.get("upgrade")
    return up is not None and (up == "websocket" or _has_token(up, "websocket"))


def _valid_key(key: str) -> bool:
    # RFC 6455 4.2.1 item 5: base64 of exactly 16 bytes -> 24 chars ending "==".
    # ASCII first: a2b_base64 raises ValueError (not binascii.Error) on a non-ASCII
    # str, and header values arrive latin-1 decoded, so bytes >= 0x80 get here.
    if len(key) != 24 or not key.isascii() or not key.endswith("=="):
        return False
    try:
        return len(binascii.a2b_base64(key, strict_mode=True)) == 16
    except binascii.Error:
        return False


# What an accepted opening handshake decided: (key, subprotocol, deflate parameters,
# Sec-WebSocket-Extensions answer), the fields of ``Upgrade`` without the object.
UpgradeTerms = tuple[str, "str | None", "DeflateParams | None", "str | None"]


def check_upgrade(
    req: Request,
    *,
    subprotocols: Sequence[str] = (),
    allowed_origins: Collection[str] | None = None,
    deflate: bool = False,
) -> Upgrade:
    """Validate an opening handshake per RFC 6455 4.2.1, or raise HandshakeError.

    ``allowed_origins``: None accepts any (or no) Origin; otherwise the Origin
    header must be present and listed, unless "*" is listed. The subprotocol is
    the first of the server's ``subprotocols`` that the client offered.
    """
    key, subprotocol, params, answer = upgrade_terms(req, subprotocols, allowed_origins, deflate)
    upgrade = _new(Upgrade)
    _set_key(upgrade, key)
    _set_subprotocol(upgrade, subprotocol)
    _set_deflate(upgrade, params)
    _set_extensions(upgrade, answer)
    return upgrade


def upgrade_terms(
    req: Request,
    subprotocols: Sequence[str] = (),
    allowed_origins: Collection[str] | None = None,
    deflate: bool = False,
) -> UpgradeTerms:
    """``check_upgrade`` as a tuple, for the server's own use: one object less per
    connection (with ``accept_response_for``)."""
    h = req.headers
    # RFC 6455 4.2.1 items 1-4.
    if req.method != "GET":
        raise HandshakeError(400, "method must be GET")
    if req.version != "HTTP/1.1":
        raise HandshakeError(400, "HTTP/1.1 required")
    if "host" not in h:
        raise HandshakeError(400, "missing Host")
    # The spellings every client sends are tested first: no call, no lower-casing.
    up = h.get("upgrade")
    if up != "websocket" and (up is None or not _has_token(up, "websocket")):
        raise HandshakeError(400, "missing Upgrade: websocket")
    conn = h.get("connection")
    if conn != "Upgrade" and (conn is None or not _has_token(conn, "upgrade")):
        raise HandshakeError(400, "missing Connection: upgrade")
    # RFC 6455 4.2.2: an unsupported version gets 426 plus the versions we speak.
    if h.get("sec-websocket-version") != "13":
        raise HandshakeError(426, "unsupported websocket version", _VERSION_HEADERS)
    key = h.get("sec-websocket-key")
    if key is None or not _valid_key(key):
        raise HandshakeError(400, "invalid Sec-WebSocket-Key")
    # RFC 6455 10.2: Origin protects browsers from cross-site use.
    if allowed_origins is not None and "*" not in allowed_origins:
        origin = h.get("origin")
        if origin is None or origin not in allowed_origins:
            raise HandshakeError(403, "origin not allowed")

    subprotocol = None
    if subprotocols:
        offered_header = h.get("sec-websocket-protocol")
        if offered_header:
            offered = {p.strip(" \t") for p in offered_header.split(",")}
            for proto in subprotocols:
                if proto in offered:
                    subprotocol = proto
                    break

    params = None
    answer = None
    if deflate:
        ext = h.get("sec-websocket-extensions")
        if ext:
            negotiated = negotiate(ext)
            if negotiated is not None:
                params, answer = negotiated
    return key, subprotocol, params, answer


def accept_key(key: str) -> str:
    """RFC 6455 4.2.2 item 5.4: base64(SHA-1(key + GUID))."""
    digest = _sha1(key.encode("ascii") + WS_GUID).digest()
    return binascii.b2a_base64(digest, newline=False).decode("ascii")


def _check_header(name: str, value: str) -> None:
    # Response splitting guard: a CR or LF from app data must never reach the wire.
    if "\r" in name or "\n" in name or "\r" in value or "\n" in value or ":" in name:
        raise ValueError("invalid header")


def _extra(headers: Iterable[tuple[str, str]]) -> str:
    out = []
    for name, value in headers:
        _check_header(name, value)
        out.append(f"{name}: {value}\r\n")
    return "".join(out)


_ACCEPT_HEAD = (
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: "
)
_ACCEPT_HEAD_B = _ACCEPT_HEAD.encode("latin-1")


def accept_response(upgrade: Upgrade, extra_headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """The complete 101 response (RFC 6455 4.2.2 item 5)."""
    return accept_response_for(
        upgrade.key, upgrade.subprotocol, upgrade.response_extensions, extra_headers
    )


def accept_response_for(
    key: str,
    subprotocol: str | None = None,
    extensions: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """``accept_response`` from the fields of an ``Upgrade`` (see ``upgrade_terms``)."""
    if subprotocol is None and extensions is None and not extra_headers:
        # The common reply, built as bytes in one go (no str join and re-encode).
        digest = _sha1(key.encode("ascii") + WS_GUID).digest()
        return _ACCEPT_HEAD_B + binascii.b2a_base64(digest, newline=False) + b"\r\n\r\n"
    parts = [_ACCEPT_HEAD, accept_key(key), "\r\n"]
    if subprotocol is not None:
        parts.append(f"Sec-WebSocket-Protocol: {subprotocol}\r\n")
    if extensions is not None:
        parts.append(f"Sec-WebSocket-Extensions: {extensions}\r\n")
    if extra_headers:
        parts.append(_extra(extra_headers))
    parts.append("\r\n")
    return "".join(parts).encode("latin-1")


def http_response(
    status: int,
    body: bytes = b"",
    *,
    content_type: str = "text/plain; charset=utf-8",
    headers: Iterable[tuple[str, str]] = (),
    keep_alive: bool = False,
) -> bytes:
    """A plain HTTP/1.1 response with a Content-Length framed body.

    RFC 9110 8.6: 1xx and 204 responses carry neither body nor Content-Length.
    """
    parts = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"]
    no_body = status < 200 or status == 204
    if not no_body:
        if body:
            _check_header("Content-Type", content_type)
            parts.append(f"Content-Type: {content_type}\r\n")
        parts.append(f"Content-Length: {len(body)}\r\n")
    if not keep_alive:
        parts.append("Connection: close\r\n")
    parts.append(_extra(headers))
    parts.append("\r\n")
    head = "".join(parts).encode("latin-1")
    return head if no_body else head + body


def reject_response(err: HandshakeError) -> bytes:
    """The HTTP reply an upgrade refused with ``err`` deserves."""
    return http_response(err.status, (err.reason + "\n").encode(), headers=err.headers)
