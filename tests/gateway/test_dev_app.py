"""The development app works with the official Pusher server libraries as they are.

What each library accepts (read from their sources):
- Python ``pusher`` 3.x: ``app_id`` must match ``\\A[0-9]+\\Z`` (``pusher/util.py``
  ``app_id_re``, checked in ``Client.__init__``: "Invalid app id"); key and secret are
  any text.
- Node ``pusher`` 5.x: ``appId`` is put in the path as given (``/apps/<appId>``), no check.
- PHP ``pusher/pusher-php-server`` 7.x: ``string $app_id``, put in ``base_path`` as given,
  no check. The key travels unencoded in the query string, so keys stay URL-safe.
So a numeric id and URL-safe key and secret work with all three.
"""

from __future__ import annotations

import asyncio
import json
import re

import pusher
import pytest
from websockets.asyncio.client import connect

from protocol.pusher.apps import DEV_APP
from tests.conftest import run_checked
from tests.served import Served


def test_dev_credentials_fit_every_server_library():
    assert re.fullmatch(r"[0-9]+", DEV_APP.id)  # the Python library's app_id_re
    for text in (DEV_APP.key, DEV_APP.secret):
        assert re.fullmatch(r"[A-Za-z0-9_.~-]+", text)  # unreserved: no URL encoding needed
    pusher.Pusher(app_id=DEV_APP.id, key=DEV_APP.key, secret=DEV_APP.secret)
    with pytest.raises(ValueError, match="Invalid app id"):
        pusher.Pusher(app_id="app-id", key=DEV_APP.key, secret=DEV_APP.secret)


def test_python_library_triggers_against_a_default_gateway():
    """``uvgate serve`` with no app configured, the library with the default credentials."""
    with Served() as served:
        assert served.proc.stdout is not None
        assert f"HTTP API at /apps/{DEV_APP.id}/" in served.proc.stdout.readline()
        lib = pusher.Pusher(
            app_id=DEV_APP.id,
            key=DEV_APP.key,
            secret=DEV_APP.secret,
            host="127.0.0.1",
            port=served.port,
            ssl=False,
        )

        async def main() -> None:
            url = f"ws://127.0.0.1:{served.port}/app/{DEV_APP.key}?protocol=7&client=py"
            async with connect(url) as ws:
                established = json.loads(await ws.recv())
                assert established["event"] == "pusher:connection_established"
                await ws.send(
                    json.dumps({"event": "pusher:subscribe", "data": {"channel": "news"}})
                )
                assert json.loads(await ws.recv())["event"] == (
                    "pusher_internal:subscription_succeeded"
                )
                result = await asyncio.to_thread(lib.trigger, "news", "posted", {"n": 1})
                assert result == {}
                event = json.loads(await ws.recv())
                assert (event["event"], event["channel"]) == ("posted", "news")
                assert json.loads(event["data"]) == {"n": 1}
                info = await asyncio.to_thread(lib.channels_info)
                assert "news" in info["channels"]

        run_checked(main())
