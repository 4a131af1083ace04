"""The PROXY protocol header (HAProxy's spec, versions 1 and 2), sans-I/O.

A TCP load balancer that does not speak HTTP (HAProxy in ``mode tcp``, AWS NLB, nginx's
``stream`` module) puts this header in front of the client's bytes so the server learns
who the client is. Version 1 is one text line::

    PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\\r\\n

version 2 a binary block: a 12-byte signature, version/command, family/transport, a
length, the addresses, then optional TLVs (ignored here).

``parse_proxy_header(buf)`` is called with everything received so far: ``None`` means
"not complete yet, read more"; a ``ProxyHeader`` says how many bytes it used (the rest is
the client's HTTP request); anything that cannot become a valid header raises
``ProxyHeaderError`` as early as the bytes allow (a plain ``GET`` fails on its first
byte). Sizes are bounded: a v1 line is at most 107 bytes (the spec's limit), a v2 block at
most ``MAX_V2_SIZE``, so a peer cannot make the server buffer more than that.

``LOCAL`` (v2: the balancer's own health check) and ``UNKNOWN``/``AF_UNSPEC``/``AF_UNIX``
carry no client address: ``source`` is ``None`` and the caller keeps the TCP peer.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = [
    "MAX_V1_SIZE",
    "MAX_V2_SIZE",
    "V2_SIGNATURE",
    "ProxyHeader",
    "ProxyHeaderError",
    "encode_v1",
    "encode_v2",
    "parse_proxy_header",
]

V1_PREFIX = b"PROXY "
MAX_V1_SIZE = 107  # "PROXY TCP6 <39> <39> <5> <5>\r\n", the spec's own bound
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEADER = 16  # signature, version/command, family/transport, length
# The addresses (at most 216 bytes, AF_UNIX) plus TLVs. Balancers send small TLVs (AWS:
# the VPC endpoint id; HAProxy: ALPN, SSL details); 4 KiB leaves room for all of them.
MAX_V2_SIZE = 4096

_LOCAL, _PROXY = 0x0, 0x1
_UNSPEC, _INET, _INET6, _UNIX = 0x0, 0x1, 0x2, 0x3
_STREAM = 0x1
_ADDRESS_SIZE = {_INET: 12, _INET6: 36, _UNIX: 216}


class ProxyHeaderError(ValueError):
    """Not a valid PROXY protocol header; the message says why (for the log)."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    version: int  # 1 or 2
    size: int  # bytes of the header: the client's own bytes start here
    source: tuple[str, int] | None  # the client (None: keep the TCP peer)
    destination: tuple[str, int] | None


def parse_proxy_header(buf: bytes | bytearray) -> ProxyHeader | None:
    """The header at the start of ``buf``, ``None`` if incomplete; ``ProxyHeaderError``
    if these bytes cannot start a valid one."""
    if not buf:
        return None
    first = buf[0]
    if first == V1_PREFIX[0]:
        return _parse_v1(buf)
    if first == V2_SIGNATURE[0]:
        return _parse_v2(buf)
    raise ProxyHeaderError("no PROXY protocol header")


# -- version 1 -----------------------------------------------------------------------------
def _parse_v1(buf: bytes | bytearray) -> ProxyHeader | None:
    head = bytes(buf[: len(V1_PREFIX)])
    if not V1_PREFIX.startswith(head):
        raise ProxyHeaderError("no PROXY protocol header")
    end = buf.find(b"\r\n", 0, MAX_V1_SIZE)
    if end < 0:
        if len(buf) >= MAX_V1_SIZE:
            raise ProxyHeaderError("PROXY v1 line longer than 107 bytes")
        if b"\n" in buf:
            raise ProxyHeaderError("PROXY v1 line not ended by CRLF")
        return None
    try:
        line = bytes(buf[:end]).decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY v1 line is not ASCII") from None
    parts = line.split(" ")
    size = end + 2
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        # The balancer could not tell (or the client is not TCP): the rest of the line
        # is to be ignored, whatever it holds.
        return ProxyHeader(1, size, None, None)
    if len(parts) != 6:
        raise ProxyHeaderError("PROXY v1 line must have 6 fields")
    _, proto, src, dst, sport, dport = parts
    if proto not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"PROXY v1 protocol {proto[:10]!r} is not TCP4, TCP6 or UNKNOWN")
    version = 4 if proto == "TCP4" else 6
    source = (_v1_address(src, version), _v1_port(sport))
    destination = (_v1_address(dst, version), _v1_port(dport))
    return ProxyHeader(1, size, source, destination)


def _v1_address(text: str, version: int) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyHeaderError(f"PROXY v1 address {text[:45]!r} is not an IP address") from None
    if address.version != version:
        raise ProxyHeaderError(f"PROXY v1 address {text!r} is not IPv{version}")
    return _plain(address)


def _v1_port(text: str) -> int:
    # Decimal, no sign, no leading zero (the spec), 0-65535.
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0] == "0"):
        raise ProxyHeaderError(f"PROXY v1 port {text[:10]!r} is not a port number")
    port = int(text)
    if port > 65535:
        raise ProxyHeaderError(f"PROXY v1 port {port} is out of range")
    return port


# -- version 2 -----------------------------------------------------------------------------
def _parse_v2(buf: bytes | bytearray) -> ProxyHeader | None:
    have = min(len(buf), len(V2_SIGNATURE))
    if bytes(buf[:have]) != V2_SIGNATURE[:have]:
        raise ProxyHeaderError("no PROXY protocol header")
    if len(buf) < V2_HEADER:
        return None
    version, command = buf[12] >> 4, buf[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError(f"PROXY v2 header has version {version}")
    if command not in (_LOCAL, _PROXY):
        raise ProxyHeaderError(f"PROXY v2 command {command} is neither LOCAL nor PROXY")
    family, transport = buf[13] >> 4, buf[13] & 0x0F
    length = int.from_bytes(buf[14:16], "big")
    size = V2_HEADER + length
    if size > MAX_V2_SIZE:
        raise ProxyHeaderError(f"PROXY v2 header of {size} bytes is over {MAX_V2_SIZE}")
    if family > _UNIX or transport > 2:
        raise ProxyHeaderError(f"PROXY v2 family/transport byte 0x{buf[13]:02x} is unknown")
    need = _ADDRESS_SIZE.get(family, 0)
    if length < need:
        raise ProxyHeaderError(f"PROXY v2 length {length} too short for its addresses")
    if len(buf) < size:
        return None
    if command == _LOCAL:
        # The balancer speaking for itself (health checks): the connection is what it is.
        return ProxyHeader(2, size, None, None)
    if family in (_UNSPEC, _UNIX):
        return ProxyHeader(2, size, None, None)
    if transport != _STREAM:
        raise ProxyHeaderError("PROXY v2 header is not for a stream (TCP) connection")
    body = bytes(buf[V2_HEADER : V2_HEADER + need])
    width = 4 if family == _INET else 16
    src = ipaddress.ip_address(body[:width])
    dst = ipaddress.ip_address(body[width : 2 * width])
    sport = int.from_bytes(body[2 * width : 2 * width + 2], "big")
    dport = int.from_bytes(body[2 * width + 2 : 2 * width + 4], "big")
    return ProxyHeader(2, size, (_plain(src), sport), (_plain(dst), dport))


def _plain(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The address as the gateway writes peers: an IPv4-mapped IPv6 address as IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


# -- encoders (tests, tools) ---------------------------------------------------------------
def encode_v1(source: tuple[str, int] | None, destination: tuple[str, int] | None) -> bytes:
    """A v1 line; ``None`` addresses give ``PROXY UNKNOWN``."""
    if source is None or destination is None:
        return b"PROXY UNKNOWN\r\n"
    proto = "TCP6" if ":" in source[0] else "TCP4"
    return f"PROXY {proto} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode()


def encode_v2(
    source: tuple[str, int] | None,
    destination: tuple[str, int] | None,
    *,
    local: bool = False,
    tlvs: bytes = b"",
) -> bytes:
    """A v2 block (PROXY, or LOCAL with ``local``), with optional raw ``tlvs``."""
    command = _LOCAL if local else _PROXY
    if source is None or destination is None:
        body = b""
        family = _UNSPEC << 4
    else:
        src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
        family = ((_INET if src.version == 4 else _INET6) << 4) | _STREAM
        body = (
            src.packed
            + dst.packed
            + source[1].to_bytes(2, "big")
            + destination[1].to_bytes(2, "big")
        )
    body += tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family]) + len(body).to_bytes(2, "big") + body
