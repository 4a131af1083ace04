from __future__ import annotations

import time

import orjson
import pusher
import pytest

from protocol.pusher import Webhook, WebhookScheduler, build_webhook_body, verify_webhook_signature
from protocol.pusher import webhooks as w

HOOK = Webhook("https://example.com/hook")
KEY, SECRET = "key", "secret"


def names(deliveries) -> list[str]:
    return [e.name for d in deliveries for e in d.events]


# -- bodies and signing ------------------------------------------------------------------


def test_event_builders():
    assert w.channel_occupied("a").as_dict() == {"name": "channel_occupied", "channel": "a"}
    assert w.channel_vacated("a").as_dict() == {"name": "channel_vacated", "channel": "a"}
    assert w.member_added("p", "1").as_dict() == {
        "name": "member_added",
        "channel": "p",
        "user_id": "1",
    }
    assert w.member_removed("p", "1").as_dict()["user_id"] == "1"
    assert w.client_event("p", "client-x", '{"a":1}', "1.2", "u").as_dict() == {
        "name": "client_event",
        "channel": "p",
        "event": "client-x",
        "data": '{"a":1}',
        "socket_id": "1.2",
        "user_id": "u",
    }
    assert "user_id" not in w.client_event("private-a", "client-x", "{}", "1.2").as_dict()
    assert w.cache_miss("cache-a").as_dict() == {"name": "cache_miss", "channel": "cache-a"}
    assert w.subscription_count("a", 3).as_dict() == {
        "name": "subscription_count",
        "channel": "a",
        "subscription_count": 3,
    }


def test_body_and_headers_validate_with_official_library():
    now_ms = int(time.time() * 1000)
    body = build_webhook_body([w.channel_occupied("a"), w.member_added("presence-a", "1")], now_ms)
    assert orjson.loads(body) == {
        "time_ms": now_ms,
        "events": [
            {"name": "channel_occupied", "channel": "a"},
            {"name": "member_added", "channel": "presence-a", "user_id": "1"},
        ],
    }
    headers = dict(w.webhook_headers(KEY, SECRET, body, [("X-Pusher-Key", "evil"), ("A", "b")]))
    assert headers["X-Pusher-Key"] == KEY
    assert headers["A"] == "b"
    assert headers["Content-Type"] == "application/json"
    assert verify_webhook_signature(SECRET, body, headers["X-Pusher-Signature"])
    client = pusher.Pusher(app_id="1", key=KEY, secret=SECRET)
    assert client.validate_webhook(KEY, headers["X-Pusher-Signature"], body.decode()) is not None
    assert client.validate_webhook(KEY, "0" * 64, body.decode()) is None


def test_delivery_render_uses_time_of_attempt():
    s = WebhookScheduler([Webhook("http://x", headers=(("H", "v"),))], batch_window=0)
    s.add(w.channel_occupied("a"), 0)
    (d,) = s.due(0)
    body, headers = d.render(KEY, SECRET, time_ms=123)
    assert orjson.loads(body)["time_ms"] == 123
    assert ("H", "v") in headers
    body2, _ = d.render(KEY, SECRET, time_ms=456)
    assert orjson.loads(body2)["time_ms"] == 456


# -- batching ----------------------------------------------------------------------------


def test_batching_window():
    s = WebhookScheduler([HOOK], batch_window=0.5)
    assert s.next_deadline() is None and s.due(0) == []
    s.add(w.channel_occupied("a"), 10.0)
    s.add(w.channel_occupied("b"), 10.2)
    assert s.next_deadline() == 10.5
    assert s.due(10.4) == []
    (d,) = s.due(10.5)
    assert names([d]) == ["channel_occupied", "channel_occupied"]
    assert (d.attempt, d.first_attempt_at, d.webhook) == (0, 10.5, HOOK)
    assert s.next_deadline() is None and s.pending() == 0


def test_full_batch_is_due_at_once():
    s = WebhookScheduler([HOOK], batch_window=60, max_batch_events=3)
    for i in range(4):
        s.add(w.channel_occupied(f"c{i}"), 1.0)
    assert s.next_deadline() == 1.0
    deliveries = s.due(1.0)
    assert [len(d.events) for d in deliveries] == [3]
    assert s.pending() == 1


def test_event_type_filter_and_fan_out():
    occupied_only = Webhook("http://a", frozenset({"channel_occupied"}))
    everything = Webhook("http://b")
    s = WebhookScheduler([occupied_only, everything], batch_window=0)
    s.add(w.channel_occupied("a"), 0)
    s.add(w.client_event("private-a", "client-x", "{}", "1.1"), 0)
    by_url = {d.webhook.url: names([d]) for d in s.due(0)}
    assert by_url == {
        "http://a": ["channel_occupied"],
        "http://b": ["channel_occupied", "client_event"],
    }


def test_retarget_sends_what_follows_to_the_new_webhooks():
    old, new = Webhook("http://old"), Webhook("http://new", frozenset({"channel_vacated"}))
    s = WebhookScheduler([old], batch_window=1.0)
    s.add(w.channel_occupied("a"), 0)  # batched for the old webhook
    s.add(w.channel_vacated("b"), 0)  # delayed: goes where the list says when released
    s.retarget([new])
    s.add(w.channel_occupied("c"), 0.5)  # the new webhook does not want it
    s.add(w.channel_vacated("d"), 0.5)
    by_url: dict[str, list[str]] = {}
    for now in (1.0, 3.0, 3.5, 4.5):
        for d in s.due(now):
            by_url.setdefault(d.webhook.url, []).extend(e.channel for e in d.events)
    assert by_url == {"http://old": ["a"], "http://new": ["b", "d"]}
    assert s.pending() == 0


def test_unwanted_events_are_dropped_early():
    s = WebhookScheduler([Webhook("http://a", frozenset({"member_added"}))])
    s.add(w.channel_occupied("a"), 0)
    s.add(w.channel_vacated("a"), 0)
    assert s.pending() == 0 and s.next_deadline() is None
    assert WebhookScheduler([]).due(0) == []


# -- delayed vacate / remove -------------------------------------------------------------


def test_vacated_waits_3_seconds():
    s = WebhookScheduler([HOOK], batch_window=0.25)
    s.add(w.channel_vacated("a"), 100.0)
    assert s.next_deadline() == 103.0
    assert s.due(102.9) == []
    assert names(s.due(103.0)) == ["channel_vacated"]  # already waited: no batching delay


def test_quick_reoccupy_cancels_both():
    s = WebhookScheduler([HOOK], batch_window=0)
    s.add(w.channel_vacated("a"), 0.0)
    s.add(w.channel_occupied("a"), 2.0)
    assert s.due(10.0) == []
    assert s.cancelled == 1 and s.pending() == 0


def test_late_reoccupy_does_not_cancel():
    s = WebhookScheduler([HOOK], batch_window=0)
    s.add(w.channel_vacated("a"), 0.0)
    assert names(s.due(3.0)) == ["channel_vacated"]
    s.add(w.channel_occupied("a"), 3.1)
    assert names(s.due(3.1)) == ["channel_occupied"]


def test_quick_rejoin_cancels_member_removed_only_for_same_user_and_channel():
    s = WebhookScheduler([HOOK], batch_window=0)
    s.add(w.member_removed("presence-a", "u1"), 0.0)
    s.add(w.member_removed("presence-a", "u2"), 0.0)
    s.add(w.member_removed("presence-b", "u1"), 0.0)
    s.add(w.member_added("presence-a", "u1"), 1.0)
    s.add(w.channel_occupied("other"), 1.0)
    assert names(s.due(1.0)) == ["channel_occupied"]
    out = s.due(3.0)
    assert sorted((e.channel, e.user_id) for d in out for e in d.events) == [
        ("presence-a", "u2"),
        ("presence-b", "u1"),
    ]


def test_occupied_does_not_cancel_member_removed():
    s = WebhookScheduler([HOOK], batch_window=0)
    s.add(w.member_removed("presence-a", "u1"), 0.0)
    s.add(w.channel_occupied("presence-a"), 1.0)
    assert names(s.due(1.0)) == ["channel_occupied"]
    assert names(s.due(3.0)) == ["member_removed"]


# -- retries -----------------------------------------------------------------------------


def test_retry_schedule_values():
    assert w.retry_delays() == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert sum(w.retry_delays()) <= 300
    assert w.retry_delays(base=10, max_delay=1000, window=100) == [10, 20, 40]


def test_retry_backoff_until_5_minutes():
    s = WebhookScheduler([HOOK], batch_window=0)
    s.add(w.channel_occupied("a"), 0.0)
    (d,) = s.due(0.0)
    now = 0.0
    waits = []
    while True:
        if not s.failed(d, now):
            break
        deadline = s.next_deadline()
        assert deadline is not None
        waits.append(deadline - now)
        assert s.due(deadline - 0.001) == []
        (d,) = s.due(deadline)
        assert d.events[0].channel == "a" and d.first_attempt_at == 0.0
        now = deadline
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]  # last try at 243 s
    assert now <= 300 and s.given_up == 1 and s.pending() == 0
    assert d.attempt == 9


def test_retry_window_measured_from_first_attempt():
    s = WebhookScheduler([HOOK], batch_window=0)
    s.add(w.channel_occupied("a"), 0.0)
    (d,) = s.due(0.0)
    # the POST itself hung for 299.5 s before failing: a retry would land after 300 s
    assert s.failed(d, 299.5) is False
    assert s.given_up == 1


def test_retries_do_not_block_new_batches():
    s = WebhookScheduler([HOOK], batch_window=0)
    s.add(w.channel_occupied("a"), 0.0)
    (d,) = s.due(0.0)
    s.failed(d, 0.0)
    s.add(w.channel_occupied("b"), 0.5)
    assert names(s.due(0.5)) == ["channel_occupied"]
    retried = s.due(1.0)
    assert [x.attempt for x in retried] == [1]


# -- bounds ------------------------------------------------------------------------------


def test_pending_events_are_bounded():
    s = WebhookScheduler([HOOK], batch_window=60, max_batch_events=10, max_pending=25)
    for i in range(40):
        s.add(w.channel_occupied(f"c{i}"), 0.0)
    for i in range(10):
        s.add(w.channel_vacated(f"v{i}"), 0.0)
    assert s.pending() <= 25 and s.dropped == 25
    delivered = [e.channel for d in s.due(100.0) for e in d.events]
    assert len(delivered) == 25
    assert "c39" in delivered  # newest kept


def test_retries_are_bounded():
    s = WebhookScheduler([HOOK], batch_window=0, max_retries_pending=2)
    for i in range(3):
        s.add(w.channel_occupied(f"c{i}"), 0.0)
        (d,) = s.due(0.0)
        assert s.failed(d, float(i)) is (i < 2)
    assert s.dropped == 1 and s.pending() == 2


def test_bad_bounds():
    with pytest.raises(ValueError):
        WebhookScheduler([HOOK], max_batch_events=0)
