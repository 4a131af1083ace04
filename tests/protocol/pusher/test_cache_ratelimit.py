from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.pusher import ClientEventLimiter, EventCache, take
from protocol.pusher.ratelimit import rate_limit_error

# -- cache -------------------------------------------------------------------------------


def test_cache_put_get_and_ttl():
    c = EventCache()  # 30 min default
    assert c.ttl == 1800
    c.put("cache-a", "ev", "d1", b"frame1", now=100.0)
    hit = c.get("cache-a", now=100.0 + 1799.9)
    assert hit is not None and (hit.event, hit.data, hit.frame) == ("ev", "d1", b"frame1")
    assert hit.ttl_left(100.0 + 1000) == pytest.approx(800)
    assert hit.info(100.0 + 1000.5) == {"data": "d1", "ttl": 799}
    assert c.get("cache-a", now=100.0 + 1800) is None  # expired at exactly ttl
    assert "cache-a" not in c and len(c) == 0
    assert c.get("cache-b", now=0) is None


def test_cache_last_event_wins_and_refreshes_ttl():
    c = EventCache(ttl=10)
    c.put("cache-a", "e1", "1", b"1", now=0)
    c.put("cache-a", "e2", "2", b"2", now=5)
    hit = c.get("cache-a", now=12)
    assert hit is not None and hit.event == "e2"


def test_cache_sweep_and_next_expiry():
    c = EventCache(ttl=10)
    assert c.next_expiry() is None
    c.put("cache-a", "e", "d", b"f", now=0)
    c.put("cache-b", "e", "d", b"f", now=5)
    c.put("cache-a", "e", "d", b"f", now=6)  # moved to the back
    assert c.next_expiry() == 15
    assert c.sweep(now=14) == 0
    assert c.sweep(now=15) == 1
    assert list(c._entries) == ["cache-a"]
    assert c.sweep(now=100) == 1 and len(c) == 0
    c.put("cache-a", "e", "d", b"f", now=0)
    c.delete("cache-a")
    c.delete("cache-a")
    assert len(c) == 0


def test_cache_bounded_count_evicts_oldest():
    c = EventCache(ttl=100, max_entries=3)
    for i in range(5):
        c.put(f"cache-{i}", "e", "d", b"f", now=i)
    assert len(c) == 3
    assert c.get("cache-0", now=10) is None and c.get("cache-1", now=10) is None
    assert c.get("cache-4", now=10) is not None


def test_cache_bad_config():
    with pytest.raises(ValueError):
        EventCache(ttl=0)
    with pytest.raises(ValueError):
        EventCache(max_entries=0)


# -- rate limit --------------------------------------------------------------------------


def test_ten_per_second_then_refused():
    lim = ClientEventLimiter(10, now=0.0)
    assert all(lim.allow(0.0) for _ in range(10))
    assert not lim.allow(0.0)
    assert not lim.allow(0.05)  # half a token
    assert lim.allow(0.1)  # one token back
    assert not lim.allow(0.1)
    assert all(lim.allow(5.0) for _ in range(10))  # refill caps at the rate
    assert not lim.allow(5.0)


def test_take_is_pure_and_clock_safe():
    ok, tokens, last = take(10.0, 0.0, 0.0, 10)
    assert ok and tokens == 9.0 and last == 0.0
    ok, tokens, last = take(0.0, 5.0, 4.0, 10)  # clock went backwards: no refill
    assert not ok and tokens == 0.0 and last == 5.0


def test_rate_limit_error_is_4301_non_fatal():
    err = rate_limit_error()
    assert err.code == 4301 and not err.fatal


@given(st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=200))
def test_never_more_than_rate_plus_burst(gaps):
    """Over any run, allowed <= burst (rate) + rate * elapsed."""
    rate = 10
    lim = ClientEventLimiter(rate, now=0.0)
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        allowed += lim.allow(now)
    assert allowed <= rate + rate * now + 1e-9
