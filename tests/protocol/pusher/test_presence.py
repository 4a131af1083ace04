from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.pusher import (
    InvalidPresenceData,
    PresenceRoster,
    SubscriptionError,
    parse_channel_data,
)
from protocol.pusher.errors import PRESENCE_FULL


def test_dedupe_per_user():
    r = PresenceRoster()
    assert r.add("presence-a", "1.1", "u1", {"n": 1}) is True
    assert r.add("presence-a", "1.2", "u1", {"n": 2}) is False  # second tab
    assert r.add("presence-a", "1.3", "u2") is True
    assert r.count("presence-a") == 2
    assert dict(r.members("presence-a")) == {"u1": {"n": 1}, "u2": None}
    assert r.sockets_of("presence-a", "u1") == {"1.1", "1.2"}
    assert r.remove("presence-a", "1.1", "u1") is False  # one tab left
    assert r.has_member("presence-a", "u1")
    assert r.remove("presence-a", "1.2", "u1") is True
    assert not r.has_member("presence-a", "u1")
    assert r.user_ids("presence-a") == ["u2"]
    assert r.remove("presence-a", "1.3", "u2") is True
    assert r.count("presence-a") == 0
    assert len(r) == 0 and list(r.channels()) == []
    assert dict(r.members("presence-a")) == {}


def test_channels_are_independent():
    r = PresenceRoster()
    assert r.add("presence-a", "1.1", "u1")
    assert r.add("presence-b", "1.1", "u1")
    assert r.remove("presence-a", "1.1", "u1")
    assert r.has_member("presence-b", "u1")
    assert sorted(r.channels()) == ["presence-b"]


def test_remove_unknown_is_noop():
    r = PresenceRoster()
    assert r.remove("presence-a", "1.1", "u1") is False
    r.add("presence-a", "1.1", "u1")
    assert r.remove("presence-a", "9.9", "u1") is False
    assert r.remove("presence-a", "1.1", "u9") is False
    assert r.count("presence-a") == 1


def test_same_socket_twice_counts_once():
    r = PresenceRoster()
    assert r.add("presence-a", "1.1", "u1")
    assert not r.add("presence-a", "1.1", "u1")
    assert r.remove("presence-a", "1.1", "u1") is True


def test_member_limit():
    r = PresenceRoster(max_members=2)
    r.add("presence-a", "1.1", "u1")
    r.add("presence-a", "1.2", "u2")
    assert r.add("presence-a", "1.3", "u2") is False  # existing user: always allowed
    with pytest.raises(SubscriptionError) as info:
        r.add("presence-a", "1.4", "u3")
    err = info.value
    assert (err.code, err.type, err.status, err.channel) == (
        PRESENCE_FULL,
        "LimitReached",
        403,
        "presence-a",
    )
    assert not err.is_auth_failure and not err.fatal
    assert r.count("presence-a") == 2
    # per-call override (per-app limit)
    assert r.add("presence-a", "1.4", "u3", max_members=3)
    with pytest.raises(SubscriptionError):
        PresenceRoster().add("presence-z", "1.1", "u1", max_members=0)
    assert len(PresenceRoster()) == 0


def test_default_limit_is_100():
    r = PresenceRoster()
    for i in range(100):
        r.add("presence-a", f"1.{i}", str(i))
    with pytest.raises(SubscriptionError):
        r.add("presence-a", "2.0", "new")


def test_parse_channel_data():
    assert parse_channel_data('{"user_id":5}').user_id == "5"
    member = parse_channel_data('{"user_id":"a","user_info":{"x":[1]}}')
    assert (member.user_id, member.user_info) == ("a", {"x": [1]})
    for bad in (None, "", "x", "1", '{"user_info":{}}', '{"user_id":false}', '{"user_id":[1]}'):
        with pytest.raises(InvalidPresenceData):
            parse_channel_data(bad)


ops = st.lists(
    st.tuples(
        st.booleans(),
        st.sampled_from(["presence-a", "presence-b"]),
        st.sampled_from(["1.1", "1.2", "1.3"]),
        st.sampled_from(["u1", "u2"]),
    ),
    max_size=60,
)


@given(ops)
def test_roster_matches_model(operations):
    """member_added/removed fire exactly on the user's first/last connection."""
    r = PresenceRoster()
    model: dict[tuple[str, str], set[str]] = {}
    for is_add, channel, sid, user in operations:
        sockets = model.setdefault((channel, user), set())
        if is_add:
            assert r.add(channel, sid, user) == (not sockets)
            sockets.add(sid)
        else:
            was_last = sockets == {sid}
            assert r.remove(channel, sid, user) == was_last
            sockets.discard(sid)
    for channel in ("presence-a", "presence-b"):
        expected = {u for (c, u), s in model.items() if c == channel and s}
        assert set(r.members(channel)) == expected
        assert r.count(channel) == len(expected)


@pytest.mark.parametrize("depth", [33, 100, 253, 300, 1000])
def test_deep_user_info_is_invalid_presence_data(depth):
    # orjson reads 1024 levels but writes 254; the server wraps user_info in its own
    # frames, so nesting is bounded well below that (a TypeError escaped before).
    info = "[" * depth + "]" * depth
    with pytest.raises(InvalidPresenceData, match="nested too deeply"):
        parse_channel_data('{"user_id":1,"user_info":' + info + "}")


def test_user_info_at_the_depth_bound_is_encodable_in_every_server_frame():
    from protocol.pusher import messages
    from protocol.pusher.presence import MAX_USER_INFO_DEPTH

    info = '{"a":' * (MAX_USER_INFO_DEPTH - 1) + "[1]" + "}" * (MAX_USER_INFO_DEPTH - 1)
    member = parse_channel_data('{"user_id":"u","user_info":' + info + "}")
    messages.subscription_succeeded("presence-x", {"u": member.user_info})
    messages.member_added("presence-x", "u", member.user_info)
    too_deep = "[" + info + "]"
    with pytest.raises(InvalidPresenceData):
        parse_channel_data('{"user_id":"u","user_info":' + too_deep + "}")
