"""Signatures against the reference worked example and the official ``pusher`` library."""

from __future__ import annotations

import json
import time

import pusher
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.pusher import (
    App,
    api_string_to_sign,
    authorize_signin,
    authorize_subscription,
    body_md5,
    is_valid_socket_id,
    parse_query,
    sign_api_request,
    sign_channel,
    sign_user,
    verify_api_request,
    verify_channel_auth,
    verify_user_auth,
    verify_webhook_signature,
    webhook_signature,
)
from protocol.pusher.messages import Signin, Subscribe
from protocol.pusher.signatures import canonical_query, constant_time_equals

KEY, SECRET = "278d425bdf160c739803", "7ad3773142a6692b25b8"
APP = App(id="3", key=KEY, secret=SECRET)


def official() -> pusher.Pusher:
    return pusher.Pusher(app_id="3", key=KEY, secret=SECRET, host="localhost", port=6001, ssl=False)


# -- reference worked example ------------------------------------------------------------


def test_worked_example_string_and_signature():
    params = {
        "auth_key": KEY,
        "auth_timestamp": "1353088179",
        "auth_version": "1.0",
        "body_md5": "ec365a775a4cd0599faeb73354201b6f",
    }
    string = api_string_to_sign("POST", "/apps/3/events", params)
    assert string == (
        "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179"
        "&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f"
    )
    assert (
        sign_api_request(SECRET, "POST", "/apps/3/events", params)
        == "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
    )


def test_worked_example_body_md5():
    body = b'{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'
    assert body_md5(body) == "ec365a775a4cd0599faeb73354201b6f"


def test_canonical_query_rules():
    # keys lower-cased and sorted, auth_signature excluded, repeats joined with ","
    pairs = [("B", "2"), ("a", "1"), ("auth_signature", "x"), ("info", "u"), ("info", "s")]
    assert canonical_query(pairs) == "a=1&b=2&info=u,s"
    assert canonical_query({"info": ["u", "s"], "a": "1"}) == "a=1&info=u,s"
    # values are used unescaped (decoded by parse_query first)
    assert canonical_query(parse_query("filter_by_prefix=presence%2D&x=a%2Cb")) == (
        "filter_by_prefix=presence-&x=a,b"
    )


# -- channel and user auth vs the official library ---------------------------------------


def test_private_channel_auth_matches_official_library():
    response = official().authenticate(channel="private-foo", socket_id="1234.5678")
    assert response["auth"] == sign_channel(KEY, SECRET, "1234.5678", "private-foo")
    assert verify_channel_auth(response["auth"], KEY, SECRET, "1234.5678", "private-foo")
    grant = authorize_subscription(APP, "1234.5678", Subscribe("private-foo", response["auth"]))
    assert grant.channel == "private-foo"


def test_presence_channel_auth_matches_official_library():
    custom = {"user_id": 42, "user_info": {"name": "Ada"}}
    response = official().authenticate(channel="presence-room", socket_id="1.2", custom_data=custom)
    channel_data = response["channel_data"]
    assert response["auth"] == sign_channel(KEY, SECRET, "1.2", "presence-room", channel_data)
    grant = authorize_subscription(
        APP, "1.2", Subscribe("presence-room", response["auth"], channel_data)
    )
    assert grant.member is not None
    assert grant.member.user_id == "42"
    assert grant.member.user_info == {"name": "Ada"}


def test_encrypted_channel_auth_matches_official_library():
    client = pusher.Pusher(
        app_id="3", key=KEY, secret=SECRET, encryption_master_key_base64="A" * 43 + "="
    )
    response = client.authenticate(channel="private-encrypted-x", socket_id="1.2")
    assert "shared_secret" in response
    authorize_subscription(APP, "1.2", Subscribe("private-encrypted-x", response["auth"]))


def test_user_signin_matches_official_library():
    response = official().authenticate_user("9.9", {"id": "u1", "user_info": {"a": 1}})
    assert response["auth"] == sign_user(KEY, SECRET, "9.9", response["user_data"])
    assert verify_user_auth(response["auth"], KEY, SECRET, "9.9", response["user_data"])
    user = authorize_signin(APP, "9.9", Signin(response["auth"], response["user_data"]))
    assert user.id == "u1"


def test_verify_refuses_wrong_key_prefix_socket_and_garbage():
    auth = sign_channel(KEY, SECRET, "1.2", "private-a")
    assert not verify_channel_auth(auth, "otherkey", SECRET, "1.2", "private-a")
    assert not verify_channel_auth(auth, KEY, SECRET, "1.3", "private-a")
    assert not verify_channel_auth(auth, KEY, SECRET, "1.2", "private-b")
    assert not verify_channel_auth(auth.upper(), KEY, SECRET, "1.2", "private-a")
    assert not verify_channel_auth(None, KEY, SECRET, "1.2", "private-a")
    assert not verify_channel_auth("é:\udcff", KEY, SECRET, "1.2", "private-a")
    assert not verify_channel_auth(auth + "0", KEY, SECRET, "1.2", "private-a")


def test_constant_time_equals_accepts_non_ascii():
    assert constant_time_equals("é", "é")
    assert not constant_time_equals("é", "e")


# -- HTTP API requests built by the official library -------------------------------------


def _verify_official(request, *, now: float | None = None) -> None:
    verify_api_request(
        request.method,
        request.path,
        request.query_params,
        request.body,
        APP,
        time.time() if now is None else now,
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda c: c.trigger.make_request(["my-channel"], "my-event", {"msg": "hi"}),
        lambda c: c.trigger.make_request("private-a", "e", "raw", socket_id="1.2"),
        lambda c: c.trigger_batch.make_request([{"channel": "a", "name": "e", "data": {"x": 1}}]),
        lambda c: c.channels_info.make_request(
            prefix_filter="presence-", attributes=["user_count"]
        ),
        lambda c: c.channel_info.make_request(
            "presence-x", attributes=["user_count", "subscription_count"]
        ),
        lambda c: c.users_info.make_request("presence-x"),
        lambda c: c.terminate_user_connections.make_request("u1"),
    ],
    ids=["trigger", "trigger-socket", "batch", "channels", "channel", "users", "terminate"],
)
def test_official_library_requests_verify(make):
    request = make(official()._pusher_client)
    _verify_official(request)


def test_official_get_sends_empty_body_md5_and_it_is_accepted():
    request = official()._pusher_client.channels_info.make_request()
    assert request.method == "GET"
    assert request.query_params["body_md5"] == body_md5(b"")
    _verify_official(request)


def test_official_request_through_url_round_trip():
    """Capture the URL the library would send and verify it as the gateway would."""
    request = official()._pusher_client.channel_info.make_request(
        "presence-x", attributes=["user_count", "subscription_count"]
    )
    path, _, query = request.signed_path.partition("?")
    verify_api_request("GET", path, parse_query(query), b"", APP, time.time())


def test_official_request_fails_for_other_secret():
    request = official()._pusher_client.trigger.make_request(["c"], "e", "d")
    other = App(id="3", key=KEY, secret="not-the-secret")
    from protocol.pusher import ApiError

    with pytest.raises(ApiError) as info:
        verify_api_request(
            request.method, request.path, request.query_params, request.body, other, time.time()
        )
    assert info.value.status == 401


# -- webhooks and socket ids --------------------------------------------------------------


def test_webhook_signature_validates_with_official_library():
    body = json.dumps({"time_ms": int(time.time() * 1000), "events": []}).encode()
    signature = webhook_signature(SECRET, body)
    assert verify_webhook_signature(SECRET, body, signature)
    assert not verify_webhook_signature(SECRET, body + b" ", signature)
    assert not verify_webhook_signature(SECRET, body, None)
    assert official().validate_webhook(KEY, signature, body.decode()) is not None


@pytest.mark.parametrize("good", ["1.2", "123456.7890123", "0.0"])
def test_socket_id_valid(good):
    assert is_valid_socket_id(good)


@pytest.mark.parametrize(
    "bad", ["", "1", "1.", ".1", "a.b", "1.2.3", "1.2\n", " 1.2", "1,2", "-1.2", None, 1.2]
)
def test_socket_id_invalid(bad):
    assert not is_valid_socket_id(bad)


@given(st.from_regex(r"\A[0-9]{1,12}\.[0-9]{1,12}\Z"))
def test_socket_id_property(socket_id):
    assert is_valid_socket_id(socket_id)


@given(
    st.text(min_size=1, max_size=40),
    st.text(min_size=1, max_size=80),
    st.one_of(st.none(), st.text(max_size=80)),
)
def test_channel_sign_verify_round_trip(socket_id, channel, channel_data):
    auth = sign_channel(KEY, SECRET, socket_id, channel, channel_data)
    assert verify_channel_auth(auth, KEY, SECRET, socket_id, channel, channel_data)
