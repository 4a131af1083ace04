"""Which address is the client's, behind reverse proxies (``X-Forwarded-For``), sans-I/O.

Each proxy appends the address it got the request from, so the header reads
``client, proxy1, proxy2`` and the TCP peer is the last proxy. Only the right end can be
trusted: anything left of a hop we do not trust was written by that hop (or its client)
and may be forged. So the client is the **right-most address that is not a trusted
proxy**; if every hop is trusted, the left-most one.

The header is honoured only when the TCP peer itself is a trusted proxy (the caller
checks ``peer in trusted``); from anyone else it is ignored. A hop that is not an address
(``unknown``, an obfuscated name, garbage) makes the whole header unusable: the caller
then keeps the peer, which is the safe answer. Accepted forms of a hop: ``192.0.2.7``,
``192.0.2.7:5678``, ``2001:db8::7``, ``[2001:db8::7]``, ``[2001:db8::7]:5678``.
IPv4-mapped IPv6 addresses (``::ffff:192.0.2.7``, what a dual-stack socket reports for
an IPv4 peer) are written as IPv4, so ``127.0.0.1/32`` matches them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["TrustedProxies", "normalize_ip", "parse_network"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Hops examined from the right before giving up: a chain of proxies is short; a header of
# thousands of trusted-looking hops is an attack, and the peer is the safe answer.
MAX_HOPS = 32
# Distinct peer addresses whose trust is remembered (the proxies are a handful; direct
# clients are many, so the memo is reset when it fills up rather than growing).
MEMO_SIZE = 4096


def parse_network(text: str) -> Network:
    """``ValueError`` with a message naming ``text`` unless it is a CIDR or one address."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP network (use CIDR like 10.0.0.0/8 or one address)"
        ) from None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normalize_ip(hop: str) -> str | None:
    """One ``X-Forwarded-For`` hop as a plain address string, None if it is not one."""
    text = hop.strip()
    if not text or len(text) > 64:
        return None
    if text[0] == "[":
        close = text.find("]")
        if close < 0:
            return None
        rest = text[close + 1 :]
        if rest and not (rest[0] == ":" and _is_port(rest[1:])):
            return None
        text = text[1:close]
        if ":" not in text:
            return None  # brackets are for IPv6 only
    elif text.count(":") == 1:
        text, port = text.split(":")
        if not _is_port(port):
            return None
    address = _address(text)
    return str(address) if address is not None else None


def _is_port(text: str) -> bool:
    return 0 < len(text) <= 5 and text.isascii() and text.isdigit() and int(text) <= 65535


class TrustedProxies:
    """The networks whose connections may name the client (``trusted_proxies``)."""

    __slots__ = ("_memo", "networks")

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(parse_network(n) for n in networks)
        self._memo: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, ip: object) -> bool:
        """Whether ``ip`` (an address string, as the transport or a hop gives it) is trusted."""
        if not isinstance(ip, str):
            return False
        memo = self._memo
        known = memo.get(ip)
        if known is not None:
            return known
        address = _address(ip.split("%", 1)[0])  # no IPv6 zone id in a network match
        trusted = address is not None and any(address in net for net in self.networks)
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[ip] = trusted
        return trusted

    def client_ip(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address: the right-most untrusted hop of ``forwarded_for`` (the
        joined ``X-Forwarded-For`` headers), or ``peer`` when the header is absent, has
        a hop that is not an address, or is too long to be a real chain.

        The caller must have checked that ``peer`` is trusted."""
        if not forwarded_for:
            return peer
        hops = forwarded_for.rsplit(",", MAX_HOPS)
        if len(hops) > MAX_HOPS:
            # More hops than any real chain: look at the right-most MAX_HOPS only; if
            # they are all trusted the header is not believable, keep the peer.
            hops = hops[1:]
            limited = True
        else:
            limited = False
        for hop in reversed(hops):
            ip = normalize_ip(hop)
            if ip is None:
                return peer
            if ip not in self:
                return ip
        if limited:
            return peer
        first = normalize_ip(hops[0])
        return first if first is not None else peer
