from __future__ import annotations

import dataclasses

import pytest

from protocol.pusher import (
    DEV_APP,
    PusherError,
    StaticAppStore,
    check_connect,
    check_quota,
)

STORE = StaticAppStore([DEV_APP, dataclasses.replace(DEV_APP, id="off", key="off", enabled=False)])
JS = {"protocol": "7", "client": "js", "version": "8.4.0", "flash": "false"}


def test_pusher_js_url_accepted():
    req = check_connect("/app/app-key", JS, STORE)
    assert (req.app, req.protocol, req.client, req.version) == (DEV_APP, 7, "js", "8.4.0")
    assert check_connect("/app/app-key", [("protocol", "7")], STORE).client is None


@pytest.mark.parametrize(
    ("path", "query", "code"),
    [
        ("/apps/app-key", JS, 4005),
        ("/app/", JS, 4005),
        ("/app/app-key/x", JS, 4005),
        ("/", JS, 4005),
        ("/app/app-key", {}, 4008),
        ("/app/app-key", {"protocol": ""}, 4008),
        ("/app/app-key", {"protocol": "seven"}, 4006),
        ("/app/app-key", {"protocol": "7.0"}, 4006),
        ("/app/app-key", {"protocol": "²"}, 4006),
        ("/app/app-key", {"protocol": "99999999"}, 4006),
        ("/app/app-key", {"protocol": "6"}, 4007),
        ("/app/app-key", {"protocol": "8"}, 4007),
        ("/app/nope", JS, 4001),
        ("/app/off", JS, 4003),
    ],
)
def test_refusals_are_fatal_with_code(path, query, code):
    with pytest.raises(PusherError) as info:
        check_connect(path, query, STORE)
    assert info.value.code == code and info.value.fatal


def test_older_protocols_can_be_enabled():
    assert check_connect("/app/app-key", {"protocol": "6"}, STORE, protocols=frozenset({6, 7}))


def test_quota():
    check_quota(DEV_APP, 10**9)  # unlimited
    limited = dataclasses.replace(DEV_APP, max_connections=2)
    check_quota(limited, 1)
    with pytest.raises(PusherError) as info:
        check_quota(limited, 2)
    assert info.value.code == 4004 and info.value.fatal
