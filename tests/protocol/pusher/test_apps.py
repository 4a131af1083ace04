from __future__ import annotations

import tomllib

import pytest

from protocol.pusher import DEV_APP, App, StaticAppStore, Webhook, app_from_mapping

TOML = """
[[apps]]
id = 42
key = "k"
secret = "s"
name = "demo"
client_events = true
max_connections = 1000
auth_failure = "error"
first_message = "signin"
require_auth_within = 5
cache_ttl = 600

[[apps.webhooks]]
url = "https://example.com/hook"
event_types = ["channel_occupied", "member_added"]
headers = { Authorization = "Bearer x" }
"""


def test_from_toml():
    app = app_from_mapping(tomllib.loads(TOML)["apps"][0])
    assert app.id == "42" and app.key == "k" and app.secret == "s"
    assert app.client_events and app.max_connections == 1000
    assert app.auth_failure == "error" and app.first_message == "signin"
    assert app.require_auth_within == 5.0 and app.cache_ttl == 600.0
    assert app.webhooks == (
        Webhook(
            "https://example.com/hook",
            frozenset({"channel_occupied", "member_added"}),
            (("Authorization", "Bearer x"),),
        ),
    )
    assert app.webhooks[0].wants("member_added") and not app.webhooks[0].wants("client_event")
    assert app.webhooks_for("member_added") == app.webhooks
    assert app.webhooks_for("client_event") == ()


def test_defaults():
    app = app_from_mapping({"id": "1", "key": "k", "secret": "s"})
    assert app == App(id="1", key="k", secret="s")
    assert (app.enabled, app.max_connections, app.client_events) == (True, None, False)
    assert (app.max_client_events_per_second, app.max_event_payload_kb) == (10, 10)
    assert (app.max_channels_per_event, app.max_batch_size, app.max_presence_members) == (
        100,
        10,
        100,
    )
    assert (app.auth_failure, app.require_auth_within, app.first_message) == ("close", None, "any")
    assert (app.activity_timeout, app.cache_ttl) == (120, 1800.0)
    assert app.max_event_payload_bytes == 10240
    assert "s-e-c-r-e-t" not in repr(App(id="1", key="k", secret="s-e-c-r-e-t"))
    assert Webhook("http://x").wants("anything")


def test_dev_app():
    assert (DEV_APP.id, DEV_APP.key, DEV_APP.secret) == ("12345", "app-key", "app-secret")
    assert DEV_APP.client_events


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"key": "k", "secret": "s"}, "missing required 'id'"),
        ({"id": "1", "secret": "s"}, "missing required 'key'"),
        ({"id": "1", "key": "k"}, "missing required 'secret'"),
        ({"id": "1", "key": "", "secret": "s"}, "'key' must not be empty"),
        ({"id": "1", "key": ["k"], "secret": "s"}, "'key' must be a string"),
        ({"id": "1", "key": "k", "secret": "s", "colour": 1}, "unknown keys colour"),
        ({"id": "1", "key": "k", "secret": "s", "enabled": "yes"}, "'enabled' must be true"),
        ({"id": "1", "key": "k", "secret": "s", "max_connections": 0}, "positive integer"),
        ({"id": "1", "key": "k", "secret": "s", "max_batch_size": True}, "positive integer"),
        ({"id": "1", "key": "k", "secret": "s", "auth_failure": "ignore"}, "must be one of"),
        ({"id": "1", "key": "k", "secret": "s", "first_message": "x"}, "must be one of"),
        ({"id": "1", "key": "k", "secret": "s", "cache_ttl": 3600}, "at most 1800"),
        ({"id": "1", "key": "k", "secret": "s", "cache_ttl": "x"}, "must be a number"),
        ({"id": "1", "key": "k", "secret": "s", "require_auth_within": -1}, "positive number"),
        ({"id": "1", "key": "k", "secret": "s", "webhooks": {}}, "list of tables"),
        ({"id": "1", "key": "k", "secret": "s", "webhooks": [{}]}, "missing required 'url'"),
        ({"id": "1", "key": "k", "secret": "s", "webhooks": [{"url": "ftp://x"}]}, "http://"),
        (
            {
                "id": "1",
                "key": "k",
                "secret": "s",
                "webhooks": [{"url": "http://x", "event_types": ["x"]}],
            },
            "unknown event types x",
        ),
        (
            {
                "id": "1",
                "key": "k",
                "secret": "s",
                "webhooks": [{"url": "http://x", "headers": {"a": 1}}],
            },
            "table of strings",
        ),
        (
            {"id": "1", "key": "k", "secret": "s", "webhooks": [{"url": "http://x", "x": 1}]},
            "unknown keys x",
        ),
        ([], "must be a table"),
    ],
)
def test_errors(data, message):
    with pytest.raises(ValueError, match=message):
        app_from_mapping(data)


def test_static_store():
    a, b = App(id="1", key="ka", secret="s"), App(id="2", key="kb", secret="s")
    store = StaticAppStore([a, b])
    assert store.by_key("ka") is a and store.by_id("2") is b
    assert store.by_key("nope") is None and store.by_id("nope") is None
    assert len(store) == 2 and list(store) == [a, b]
    with pytest.raises(ValueError, match="duplicate app key"):
        StaticAppStore([a, App(id="3", key="ka", secret="s")])
    with pytest.raises(ValueError, match="duplicate app id"):
        StaticAppStore([a, App(id="1", key="kz", secret="s")])
