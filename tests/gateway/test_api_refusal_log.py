"""Pusher HTTP API refusals are logged, with status, reason, app and client, within a budget.

Seen before: a Laravel app with the wrong secret got 401s and the gateway said nothing.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from protocol.pusher.apps import DEV_APP
from tests.gwtest import running_gateway
from tests.pusher_api_helpers import call, raw, read_response, signed_target

EVENT = {"name": "flash", "channel": "news", "data": "{}"}
EVENTS = f"/apps/{DEV_APP.id}/events"


def refusals(caplog) -> list[dict[str, object]]:
    return [
        r.fields  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "uvgate.pusher.api" and r.getMessage().startswith("Pusher API request refused")
    ]


def test_a_wrong_secret_is_logged_once_then_counted(arun, caplog):
    caplog.set_level(logging.INFO, "uvgate.pusher.api")

    async def main():
        async with running_gateway() as gw:
            for _ in range(5):
                answer = await call(gw.port, DEV_APP, "POST", EVENTS, EVENT, secret="laravel-old")
                assert answer.status == 401
            assert (await call(gw.port, DEV_APP, "POST", "/apps/999/events", EVENT)).status == 404
            users = "/users/u1/terminate_connections"
            assert (await call(gw.port, DEV_APP, "POST", users, key="nope")).status == 401
            assert (await call(gw.port, DEV_APP, "GET", EVENTS)).status == 405
            assert (await call(gw.port, DEV_APP, "POST", EVENTS, EVENT)).status == 200
            lines = refusals(caplog)
            assert [(f["status"], f["app"], f["ip"]) for f in lines] == [
                (401, DEV_APP.id, "127.0.0.1"),
                (404, "999", "127.0.0.1"),
                (401, "-", "127.0.0.1"),
                (405, DEV_APP.id, "127.0.0.1"),
            ]
            assert lines[0]["reason"] == "Invalid signature"
            assert lines[1]["reason"] == "Unknown app"
            assert lines[2]["reason"] == "Invalid auth_key"
            assert lines[0]["path"] == EVENTS and lines[0]["method"] == "POST"
            # The interval ends: one line says how many the budget kept back.
            gw.pusher.api.refusals.flush(now=float("inf"))
            suppressed = [
                r for r in caplog.records if r.getMessage().endswith("similar lines suppressed")
            ]
            assert len(suppressed) == 1
            assert suppressed[0].fields["suppressed"] == 4  # type: ignore[attr-defined]
            assert suppressed[0].fields["status"] == 401  # type: ignore[attr-defined]

    arun(main())


def test_behind_a_proxy_the_client_address_is_logged(arun, caplog):
    caplog.set_level(logging.INFO, "uvgate.pusher.api")

    async def main():
        async with running_gateway(trusted_proxies=["127.0.0.1"]) as gw:
            target = signed_target(DEV_APP, "POST", EVENTS, b"{}", secret="wrong")
            request = raw("POST", target, b"{}").replace(
                b"\r\n\r\n", b"\r\nX-Forwarded-For: 203.0.113.50\r\n\r\n", 1
            )
            for source in ("127.0.0.1", "127.0.0.2"):
                sock = socket.socket()
                sock.bind((source, 0))
                sock.connect(("127.0.0.1", gw.port))
                sock.setblocking(False)
                reader, writer = await asyncio.open_connection(sock=sock)
                writer.write(request)
                assert (await read_response(reader)).status == 401
                writer.close()
            # From the trusted proxy, the forwarded client; from anyone else, the peer.
            assert [f["ip"] for f in refusals(caplog)] == ["203.0.113.50", "127.0.0.2"]

    arun(main())
