"""X-Forwarded-For behind trusted proxies (protocol/forwarded.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.forwarded import MAX_HOPS, TrustedProxies, normalize_ip, parse_network

PROXIES = TrustedProxies(["10.0.0.0/8", "2001:db8:ffff::/48", "127.0.0.1"])


@pytest.mark.parametrize(
    ("hop", "ip"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:5678", "203.0.113.7"),
        ("2001:db8::7", "2001:db8::7"),
        ("2001:DB8:0::7", "2001:db8::7"),
        ("[2001:db8::7]", "2001:db8::7"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("::ffff:192.0.2.9", "192.0.2.9"),
        ("[::ffff:192.0.2.9]:1", "192.0.2.9"),
    ],
)
def test_hop_forms(hop: str, ip: str):
    assert normalize_ip(hop) == ip


@pytest.mark.parametrize(
    "hop",
    [
        "",
        "unknown",
        "_hidden",
        "203.0.113",
        "203.0.113.7:",
        "203.0.113.7:99999",
        "203.0.113.7:http",
        "[203.0.113.7]",
        "[2001:db8::7",
        "[2001:db8::7]x",
        "[2001:db8::7]:",
        "1" * 80,
        "203.0.113.7 203.0.113.8",
    ],
)
def test_garbage_hops(hop: str):
    assert normalize_ip(hop) is None


def test_trust_matches_networks_single_addresses_and_mapped_peers():
    assert "10.1.2.3" in PROXIES and "127.0.0.1" in PROXIES
    assert "::ffff:10.1.2.3" in PROXIES  # a dual-stack socket's view of an IPv4 proxy
    assert "2001:db8:ffff:1::5" in PROXIES
    assert "127.0.0.2" not in PROXIES and "2001:db8::1" not in PROXIES
    assert "not an ip" not in PROXIES and None not in PROXIES
    assert "fe80::1%eth0" not in PROXIES
    assert not TrustedProxies([]) and PROXIES


def test_bad_network_names_the_text():
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is not an IP network"):
        parse_network("10.0.0.0/33")
    assert str(parse_network(" 10.1.2.3/8 ")) == "10.0.0.0/8"  # host bits: the network


def test_right_most_untrusted_hop_is_the_client():
    peer = "10.0.0.1"
    assert PROXIES.client_ip(peer, None) == peer
    assert PROXIES.client_ip(peer, "") == peer
    assert PROXIES.client_ip(peer, "203.0.113.7") == "203.0.113.7"
    # The client forged a first hop; the proxies appended the real one after it.
    assert PROXIES.client_ip(peer, "1.1.1.1, 203.0.113.7, 10.0.0.9") == "203.0.113.7"
    assert PROXIES.client_ip(peer, "1.1.1.1,203.0.113.7:80,10.0.0.9") == "203.0.113.7"
    assert PROXIES.client_ip(peer, "[2001:db8::7]:443, 10.0.0.9") == "2001:db8::7"
    # Every hop trusted: the left-most is where the request came from.
    assert PROXIES.client_ip(peer, "10.0.0.3, 10.0.0.9") == "10.0.0.3"


def test_garbage_means_the_peer():
    peer = "10.0.0.1"
    assert PROXIES.client_ip(peer, "203.0.113.7, unknown") == peer
    assert PROXIES.client_ip(peer, "203.0.113.7,,10.0.0.9") == peer
    assert PROXIES.client_ip(peer, "nonsense") == peer
    # Left of the client, nothing is read: a forged garbage hop there changes nothing.
    assert PROXIES.client_ip(peer, "garbage, 203.0.113.7") == "203.0.113.7"


def test_too_many_trusted_hops_is_not_believed():
    peer = "10.0.0.1"
    chain = ", ".join(["10.0.0.2"] * (MAX_HOPS + 5))
    assert PROXIES.client_ip(peer, "203.0.113.7, " + chain) == peer
    chain = ", ".join(["10.0.0.2"] * (MAX_HOPS - 1))
    assert PROXIES.client_ip(peer, "203.0.113.7, " + chain) == "203.0.113.7"


@given(st.lists(st.ip_addresses(), min_size=1, max_size=8))
def test_the_answer_is_a_hop_or_the_peer(hops):
    header = ", ".join(f"[{h}]" if h.version == 6 else str(h) for h in hops)
    answer = PROXIES.client_ip("10.0.0.1", header)
    normal = {normalize_ip(str(h)) for h in hops}
    assert answer in normal
    untrusted = [normalize_ip(str(h)) for h in hops if normalize_ip(str(h)) not in PROXIES]
    if untrusted:
        assert answer == untrusted[-1]
