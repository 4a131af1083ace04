"""Target ``httpapi``: HTTP API request verification and body / query parsers.

Input: an options byte, then ``method \\n path \\n raw query \\n body``. Declared errors:
``ApiError`` only: 401/403 from ``verify_api_request``; 400/413 from parse_trigger,
parse_batch, the query parsers and parse_terminate_user. Properties: with the option bit
"sign it", the target replaces the auth parameters with a correct signature (what a
server library sends) and verification must then succeed; whatever a parser accepts is
within the app's limits (event name, data size, channel count and names) and renders
into a response body.
"""

from __future__ import annotations

from urllib.parse import unquote

from protocol.pusher import httpapi
from protocol.pusher.apirequest import parse_query, verify_api_request
from protocol.pusher.apps import App
from protocol.pusher.channels import is_valid_channel_name
from protocol.pusher.errors import ApiError
from protocol.pusher.signatures import body_md5, sign_api_request

from .reader import Reader

NOW = 1_700_000_000.0
APP = App(id="7", key="api-key", secret="api-secret", max_batch_size=4, max_event_payload_kb=1)
AUTH = frozenset({"auth_key", "auth_timestamp", "auth_version", "auth_signature", "body_md5"})


def _signed(
    method: str, path: str, params: list[tuple[str, str]], body: bytes
) -> list[tuple[str, str]]:
    pairs = [(k, v) for k, v in params if k.lower() not in AUTH]
    pairs += [("auth_key", APP.key), ("auth_timestamp", str(int(NOW))), ("auth_version", "1.0")]
    if body:
        pairs.append(("body_md5", body_md5(body)))
    pairs.append(("auth_signature", sign_api_request(APP.secret, method, path, pairs)))
    return pairs


def _accepted(trigger: httpapi.TriggerRequest) -> None:
    assert trigger.name and len(trigger.name) <= httpapi.MAX_EVENT_NAME_LENGTH
    assert len(trigger.data.encode()) <= APP.max_event_payload_bytes
    assert 0 < len(trigger.channels) <= APP.max_channels_per_event
    assert len(set(trigger.channels)) == len(trigger.channels)
    assert all(is_valid_channel_name(c, allow_server_to_user=True) for c in trigger.channels)
    assert trigger.info <= httpapi.TRIGGER_INFO
    httpapi.trigger_response({c: {"subscription_count": 1} for c in trigger.channels})


def _refused(exc: ApiError, statuses: tuple[int, ...]) -> None:
    assert exc.status in statuses, (exc.status, exc.message)
    httpapi.error_body(exc)


def check(data: bytes) -> None:
    reader = Reader(data)
    options = reader.byte()
    method_b, _, rest = reader.rest().partition(b"\n")
    path_b, _, rest = rest.partition(b"\n")
    query_b, _, body = rest.partition(b"\n")
    method = method_b.decode("latin-1") or "POST"
    path = path_b.decode("latin-1")  # the gateway's request path: latin-1 like the head
    params = parse_query(query_b)
    if options & 1:
        params = _signed(method, path, params, body)
        verify_api_request(method, path, params, body, APP, NOW)  # must not raise
    else:
        try:
            verify_api_request(method, path, params, body, APP, NOW + (options >> 4) * 60)
        except ApiError as exc:
            _refused(exc, (401, 403))

    try:
        _accepted(httpapi.parse_trigger(body, APP))
    except ApiError as exc:
        _refused(exc, (400, 413))
    try:
        batch = httpapi.parse_batch(body, APP)
    except ApiError as exc:
        _refused(exc, (400, 413))
    else:
        assert 0 < len(batch) <= APP.max_batch_size
        for item in batch:
            _accepted(item)
    try:
        query = httpapi.parse_channels_query(params)
        assert query.info <= httpapi.CHANNELS_INFO
        httpapi.channels_response({})
    except ApiError as exc:
        _refused(exc, (400,))
    segment = unquote(path.rpartition("/")[2])
    for parse in (
        lambda: httpapi.parse_channel_query(segment, params),
        lambda: httpapi.parse_users_query(segment),
        lambda: httpapi.parse_terminate_user(segment),
    ):
        try:
            parse()
        except ApiError as exc:
            _refused(exc, (400,))
