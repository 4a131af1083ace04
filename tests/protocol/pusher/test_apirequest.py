from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.pusher import ApiError, App, body_md5, sign_api_request, verify_api_request

APP = App(id="3", key="278d425bdf160c739803", secret="7ad3773142a6692b25b8")
NOW = 1_700_000_000.0
BODY = b'{"name":"e","channels":["a"],"data":"x"}'


def signed(method="POST", path="/apps/3/events", body=BODY, *, ts=NOW, app=APP, **extra):
    params = {
        "auth_key": app.key,
        "auth_timestamp": str(int(ts)),
        "auth_version": "1.0",
        **extra,
    }
    if body:
        params["body_md5"] = body_md5(body)
    params = {k: v for k, v in params.items() if v is not None}
    params["auth_signature"] = sign_api_request(app.secret, method, path, params)
    return params


def refused(method, path, params, body, *, now=NOW, app=APP, **kw) -> ApiError:
    with pytest.raises(ApiError) as info:
        verify_api_request(method, path, params, body, app, now, **kw)
    return info.value


def test_accepts_good_post_and_get():
    verify_api_request("POST", "/apps/3/events", signed(), BODY, APP, NOW)
    params = signed("GET", "/apps/3/channels", b"", info="user_count", filter_by_prefix="presence-")
    verify_api_request("GET", "/apps/3/channels", params, b"", APP, NOW)
    # pairs form, as from parse_query
    verify_api_request("GET", "/apps/3/channels", list(params.items()), b"", APP, NOW)


def test_accepts_python_library_body_md5_on_get():
    params = signed("GET", "/apps/3/channels", b"", body_md5=body_md5(b""))
    verify_api_request("GET", "/apps/3/channels", params, b"", APP, NOW)


def test_refuses_wrong_body_md5_on_get():
    params = signed("GET", "/apps/3/channels", b"", body_md5="0" * 32)
    assert refused("GET", "/apps/3/channels", params, b"").status == 401


@pytest.mark.parametrize("skew", [601, -601, 10_000, -10_000])
def test_stale_timestamp_both_directions(skew):
    err = refused("POST", "/apps/3/events", signed(ts=NOW + skew), BODY)
    assert err.status == 401 and "Timestamp" in err.message


@pytest.mark.parametrize("skew", [600, -600, 0])
def test_timestamp_window_inclusive(skew):
    verify_api_request("POST", "/apps/3/events", signed(ts=NOW + skew), BODY, APP, NOW)


def test_configurable_window():
    params = signed(ts=NOW - 61)
    assert refused("POST", "/apps/3/events", params, BODY, max_skew=60).status == 401
    verify_api_request("POST", "/apps/3/events", params, BODY, APP, NOW, max_skew=61)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.pop("auth_key"),
        lambda p: p.pop("auth_timestamp"),
        lambda p: p.pop("auth_signature"),
        lambda p: p.pop("body_md5"),
        lambda p: p.update(auth_key="other"),
        lambda p: p.update(auth_signature="0" * 64),
        lambda p: p.update(auth_signature=p["auth_signature"].upper()),
        lambda p: p.update(auth_signature="é"),
        lambda p: p.update(auth_timestamp="soon"),
        lambda p: p.update(auth_timestamp="nan"),
        lambda p: p.update(body_md5="0" * 32),
        lambda p: p.update(extra="added-after-signing"),
    ],
)
def test_tampered_requests_are_401(mutate):
    params = signed()
    mutate(params)
    assert refused("POST", "/apps/3/events", params, BODY).status == 401


def test_bad_auth_version():
    for version in ("2.0", "", None):
        params = signed(auth_version=version)
        assert refused("POST", "/apps/3/events", params, BODY).status == 401


def test_signature_covers_method_path_and_body():
    params = signed()
    assert refused("PUT", "/apps/3/events", params, BODY).status == 401
    assert refused("POST", "/apps/4/events", params, BODY).status == 401
    assert refused("POST", "/apps/3/events", params, BODY + b" ").status == 401


def test_duplicate_auth_param_refused():
    pairs = [*signed().items(), ("auth_key", APP.key)]
    assert refused("POST", "/apps/3/events", pairs, BODY).status == 401


def test_disabled_app_is_403_after_authentication():
    disabled = dataclasses.replace(APP, enabled=False)
    assert refused("POST", "/apps/3/events", signed(), BODY, app=disabled).status == 403
    bad = {**signed(), "auth_signature": "0" * 64}
    assert refused("POST", "/apps/3/events", bad, BODY, app=disabled).status == 401


@given(
    st.dictionaries(
        st.text(alphabet="abcdefghij_", min_size=1, max_size=8).filter(
            lambda k: not k.startswith(("auth_", "body_md5"))
        ),
        st.text(max_size=20),
        max_size=5,
    ),
    st.binary(max_size=50),
    st.floats(min_value=-600, max_value=600),
)
def test_sign_verify_round_trip(extra, raw_body, skew):
    params = signed(body=raw_body, ts=NOW, **extra)
    verify_api_request("POST", "/apps/3/events", params, raw_body, APP, NOW + int(skew))


@pytest.mark.parametrize("digits", ["\u0661\u0667\u0660\u0660", "\uff11\uff17\uff10\uff10"])
def test_non_ascii_timestamp_digits_are_refused_even_when_signed(digits):
    # float() reads Arabic-Indic and fullwidth digits; a signed one must still be refused.
    ts = str(int(NOW)).replace("1700", "")
    params = {"auth_key": APP.key, "auth_timestamp": digits + ts, "auth_version": "1.0"}
    params["body_md5"] = body_md5(BODY)
    params["auth_signature"] = sign_api_request(APP.secret, "POST", "/apps/3/events", params)
    err = refused("POST", "/apps/3/events", params, BODY)
    assert err.status == 401 and err.message == "Invalid auth_timestamp"
