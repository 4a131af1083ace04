from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.pusher import (
    ChannelKind,
    InvalidChannelName,
    classify,
    is_valid_channel_name,
    server_to_user_channel,
    server_to_user_id,
    validate_channel,
)

NAME_CHARS = "-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_=@,.;"
names = st.text(alphabet=NAME_CHARS, min_size=1, max_size=164)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("private-encrypted-cache-x", ChannelKind.PRIVATE_ENCRYPTED_CACHE),
        ("private-encrypted-x", ChannelKind.PRIVATE_ENCRYPTED),
        ("private-cache-x", ChannelKind.PRIVATE_CACHE),
        ("presence-cache-x", ChannelKind.PRESENCE_CACHE),
        ("private-x", ChannelKind.PRIVATE),
        ("presence-x", ChannelKind.PRESENCE),
        ("cache-x", ChannelKind.CACHE),
        ("x", ChannelKind.PUBLIC),
        ("#server-to-user-42", ChannelKind.SERVER_TO_USER),
        # anchored: prefixes elsewhere in the name do not count
        ("my-private-x", ChannelKind.PUBLIC),
        ("public-presence-x", ChannelKind.PUBLIC),
        ("xcache-y", ChannelKind.PUBLIC),
        # a prefix without its dash is not a prefix
        ("private", ChannelKind.PUBLIC),
        ("presencex", ChannelKind.PUBLIC),
        ("cache", ChannelKind.PUBLIC),
        # most specific first
        ("private-encrypted-", ChannelKind.PRIVATE_ENCRYPTED),
        ("private-encryptedx", ChannelKind.PRIVATE),
        ("private-cache-", ChannelKind.PRIVATE_CACHE),
        ("presence-cachex", ChannelKind.PRESENCE),
        ("Private-x", ChannelKind.PUBLIC),  # case sensitive, as in pusher-js
    ],
)
def test_classify(name, kind):
    assert classify(name) is kind
    assert validate_channel(name, allow_server_to_user=True) is kind


PROPS = {
    # kind: (requires_auth, presence, encrypted, cache, client_events)
    ChannelKind.PUBLIC: (False, False, False, False, False),
    ChannelKind.PRIVATE: (True, False, False, False, True),
    ChannelKind.PRESENCE: (True, True, False, False, True),
    ChannelKind.PRIVATE_ENCRYPTED: (True, False, True, False, False),
    ChannelKind.CACHE: (False, False, False, True, False),
    ChannelKind.PRIVATE_CACHE: (True, False, False, True, True),
    ChannelKind.PRESENCE_CACHE: (True, True, False, True, True),
    ChannelKind.PRIVATE_ENCRYPTED_CACHE: (True, False, True, True, False),
    ChannelKind.SERVER_TO_USER: (False, False, False, False, False),
}


@pytest.mark.parametrize("kind", list(ChannelKind))
def test_kind_properties(kind):
    assert (
        kind.requires_auth,
        kind.is_presence,
        kind.is_encrypted,
        kind.is_cache,
        kind.allows_client_events,
    ) == PROPS[kind]
    assert kind.is_private == (kind.requires_auth and not kind.is_presence)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "a b",
        "a\n",
        "private-x\n",
        "é",
        "a/b",
        "a#b",
        "a:b",
        "a" * 165,
        "private-" + "a" * 157,
        "#server-to-user-",
        "#server-to-user-a b",
        "#other",
    ],
)
def test_invalid_names(bad):
    assert not is_valid_channel_name(bad, allow_server_to_user=True)
    with pytest.raises(InvalidChannelName):
        validate_channel(bad, allow_server_to_user=True)


def test_non_string_names():
    for bad in (None, 1, ["a"], b"a"):
        assert not is_valid_channel_name(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidChannelName):
            validate_channel(bad)


def test_length_limit_is_inclusive():
    assert is_valid_channel_name("a" * 164)
    assert not is_valid_channel_name("a" * 165)


def test_server_to_user_is_server_only():
    name = server_to_user_channel("42")
    assert name == "#server-to-user-42"
    assert not is_valid_channel_name(name)
    with pytest.raises(InvalidChannelName, match="reserved"):
        validate_channel(name)
    assert validate_channel(name, allow_server_to_user=True) is ChannelKind.SERVER_TO_USER
    assert server_to_user_id(name) == "42"
    assert server_to_user_id("private-a") is None
    assert server_to_user_id("#server-to-user-") is None


@given(names)
def test_valid_names_accepted(name):
    assert is_valid_channel_name(name)
    assert validate_channel(name) is classify(name)


@given(st.text(max_size=200))
def test_validity_matches_regex(name):
    import re

    expected = re.fullmatch(r"[-a-zA-Z0-9_=@,.;]+", name) is not None and len(name) <= 164
    assert is_valid_channel_name(name) == expected


@given(
    st.sampled_from(
        [
            "private-encrypted-cache-",
            "private-encrypted-",
            "private-cache-",
            "presence-cache-",
            "private-",
            "presence-",
            "cache-",
        ]
    ),
    names,
)
def test_prefix_wins_whatever_follows(prefix, rest):
    kind = classify(prefix + rest)
    assert kind.value == prefix[:-1]


@given(
    st.sampled_from(
        [
            "",
            "p",
            "c",
            "#",
            "private-",
            "private-encrypted-",
            "private-cache-",
            "presence-",
            "presence-cache-",
            "cache-",
            "private-encrypted-cache-",
            "#server-to-user-",
        ]
    ),
    st.text(alphabet="-abcehinprstuvy#", max_size=30),
)
def test_fast_classify_matches_prefix_table(prefix, rest):
    from protocol.pusher.channels import classify_slow

    assert classify(prefix + rest) is classify_slow(prefix + rest)
