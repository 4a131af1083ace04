"""The PROXY protocol parser (protocol/proxyproto.py): v1 and v2, incremental, bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.proxyproto import (
    MAX_V1_SIZE,
    MAX_V2_SIZE,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    encode_v1,
    encode_v2,
    parse_proxy_header,
)

REQUEST = b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"


def whole(data: bytes) -> ProxyHeader:
    header = parse_proxy_header(data)
    assert header is not None
    return header


# -- version 1 ------------------------------------------------------------------------------
def test_v1_tcp4_and_the_bytes_after_it():
    data = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n" + REQUEST
    header = whole(data)
    assert header.version == 1
    assert header.source == ("203.0.113.7", 56324)
    assert header.destination == ("192.0.2.1", 443)
    assert data[header.size :] == REQUEST


def test_v1_tcp6_and_unknown():
    header = whole(b"PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\n")
    assert header.source == ("2001:db8::7", 1) and header.destination == ("2001:db8::1", 65535)
    # A mapped address is written as IPv4, as the gateway writes its peers.
    assert whole(b"PROXY TCP6 ::ffff:192.0.2.9 ::1 5 6\r\n").source == ("192.0.2.9", 5)
    unknown = whole(b"PROXY UNKNOWN ffff::1 whatever\r\nrest")
    assert unknown.source is None and unknown.size == len(b"PROXY UNKNOWN ffff::1 whatever\r\n")
    assert whole(encode_v1(None, None)).source is None


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"PROXY TCP4 203.0.113.7 192.0.2.1 56324\r\n", "6 fields"),
        (b"PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n", "not TCP4"),
        (b"PROXY TCP4 2001:db8::1 1.2.3.4 1 2\r\n", "not IPv4"),
        (b"PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n", "not IPv6"),
        (b"PROXY TCP4 1.2.3.400 1.2.3.4 1 2\r\n", "not an IP address"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n", "not a port"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n", "not a port"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 65536\r\n", "out of range"),
        (b"PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n", "6 fields"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n", "CRLF"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 \xff\r\n", "ASCII"),
        (b"PROXZ TCP4", "no PROXY"),
        (REQUEST, "no PROXY"),
    ],
)
def test_v1_refusals(line: bytes, why: str):
    with pytest.raises(ProxyHeaderError, match=why):
        parse_proxy_header(line)


def test_v1_is_bounded():
    # Without CRLF within 107 bytes it is refused, not buffered further.
    assert parse_proxy_header(b"PROXY TCP4 " + b"1" * (MAX_V1_SIZE - 12)) is None
    with pytest.raises(ProxyHeaderError, match="longer than 107"):
        parse_proxy_header(b"PROXY TCP4 " + b"1" * (MAX_V1_SIZE - 11))
    longest = b"PROXY TCP6 " + b"ffff:" * 7 + b"ffff " + b"ffff:" * 7 + b"ffff 65535 65535\r\n"
    assert whole(longest).size == len(longest) <= MAX_V1_SIZE


# -- version 2 ------------------------------------------------------------------------------
def test_v2_inet_inet6_local_unspec():
    data = encode_v2(("203.0.113.7", 56324), ("192.0.2.1", 443)) + REQUEST
    header = whole(data)
    assert header.version == 2 and header.source == ("203.0.113.7", 56324)
    assert header.destination == ("192.0.2.1", 443)
    assert data[header.size :] == REQUEST
    six = whole(encode_v2(("2001:db8::7", 9), ("2001:db8::1", 80)))
    assert six.source == ("2001:db8::7", 9)
    # LOCAL (health checks of the balancer): no client address, keep the peer, even when
    # addresses follow.
    local = encode_v2(("203.0.113.7", 1), ("192.0.2.1", 2), local=True)
    assert whole(local).source is None and whole(local).size == len(local)
    assert whole(encode_v2(None, None)).source is None


def test_v2_tlvs_are_skipped():
    # AWS NLB appends a TLV of type 0xEA (the VPC endpoint id).
    tlv = b"\xea\x00\x0d\x01vpce-0123456"
    data = encode_v2(("198.51.100.3", 4000), ("10.0.0.5", 6001), tlvs=tlv) + REQUEST
    header = whole(data)
    assert header.source == ("198.51.100.3", 4000)
    assert data[header.size :] == REQUEST


def test_v2_unix_family_keeps_the_peer():
    body = b"\x00" * 216
    data = V2_SIGNATURE + bytes([0x21, 0x31]) + len(body).to_bytes(2, "big") + body
    assert whole(data).source is None


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (V2_SIGNATURE + b"\x11\x11\x00\x0c" + b"\x00" * 12, "version 1"),
        (V2_SIGNATURE + b"\x22\x11\x00\x0c" + b"\x00" * 12, "command 2"),
        (V2_SIGNATURE + b"\x21\x41\x00\x0c" + b"\x00" * 12, "unknown"),
        (V2_SIGNATURE + b"\x21\x11\x00\x04" + b"\x00" * 4, "too short"),
        (V2_SIGNATURE + b"\x21\x12\x00\x0c" + b"\x00" * 12, "not for a stream"),
        (V2_SIGNATURE + b"\x21\x11\xff\xff", "over 4096"),
        (b"\r\n\r\n\x00\r\nQUIX", "no PROXY"),
    ],
)
def test_v2_refusals(data: bytes, why: str):
    with pytest.raises(ProxyHeaderError, match=why):
        parse_proxy_header(data)


def test_v2_size_bound():
    ok = encode_v2(("1.2.3.4", 1), ("1.2.3.4", 2), tlvs=b"\x00" * (MAX_V2_SIZE - 16 - 12))
    assert whole(ok).size == MAX_V2_SIZE
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(
            encode_v2(("1.2.3.4", 1), ("1.2.3.4", 2), tlvs=b"\x00" * (MAX_V2_SIZE - 16 - 11))
        )


# -- incremental feeding ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "header",
    [
        encode_v1(("203.0.113.7", 56324), ("192.0.2.1", 443)),
        encode_v2(("203.0.113.7", 56324), ("192.0.2.1", 443), tlvs=b"\x01\x00\x02h2"),
        encode_v2(("2001:db8::7", 1), ("2001:db8::1", 2)),
    ],
)
def test_every_prefix_waits_and_the_whole_parses(header: bytes):
    for cut in range(len(header)):
        assert parse_proxy_header(header[:cut]) is None, cut
    assert whole(header + REQUEST).size == len(header)
    assert whole(bytearray(header)).size == len(header)


def test_an_http_request_fails_on_its_first_byte():
    for data in (b"G", b"\x16\x03\x01", b"\x00"):
        with pytest.raises(ProxyHeaderError):
            parse_proxy_header(data)


@given(st.binary(max_size=300))
def test_any_bytes_parse_wait_or_refuse(data: bytes):
    try:
        header = parse_proxy_header(data)
    except ProxyHeaderError:
        return
    if header is not None:
        assert 0 < header.size <= len(data)
        assert header.size <= max(MAX_V1_SIZE, MAX_V2_SIZE)
    else:
        assert len(data) < MAX_V2_SIZE


@given(
    st.sampled_from([1, 2]),
    st.ip_addresses(),
    st.integers(0, 65535),
    st.integers(0, 65535),
)
def test_round_trip(version: int, address, sport: int, dport: int):
    src = (str(address), sport)
    peer = "::1" if address.version == 6 else "127.0.0.1"
    dst = (peer, dport)
    data = encode_v1(src, dst) if version == 1 else encode_v2(src, dst)
    header = whole(data)
    expected = address.ipv4_mapped if address.version == 6 and address.ipv4_mapped else address
    assert header.source == (str(expected), sport)
