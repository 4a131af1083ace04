"""/metrics: prometheus-client's format, counters that add up, traffic in and out, per-app
Pusher series, and one scrape for a whole ``--workers`` instance."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from websockets.asyncio.client import connect

from gateway.metrics import Family, Metric, families_from, merge, render, snapshot
from gateway.tokens import issue_token
from protocol.frames import OP_CLOSE, OP_TEXT, encode_client_frame, encode_text
from protocol.ids import owner_of
from protocol.pusher.apps import DEV_APP
from tests.conftest import run_checked
from tests.gwtest import (
    SECRET,
    auth_message,
    metric_samples,
    raw_request,
    running_gateway,
    sample,
    upgrade_request,
)
from tests.pusher_api_helpers import call, request
from tests.served import LiveServer


async def scrape(port: int) -> str:
    return (await request(port, "GET", "/metrics")).body.decode()


def families_of(text: str) -> dict[str, tuple[str | None, str | None]]:
    """family -> (HELP, TYPE) as written on the page."""
    out: dict[str, list[str | None]] = {}
    for line in text.splitlines():
        match = re.match(r"# (HELP|TYPE) (\S+) (.*)", line)
        if match:
            kind, name, rest = match.groups()
            entry = out.setdefault(name, [None, None])
            entry[0 if kind == "HELP" else 1] = rest
    return {name: (h, t) for name, (h, t) in out.items()}


def test_every_family_has_help_and_type_and_the_process_is_there(arun):
    async def main():
        async with running_gateway() as gw:
            text = await scrape(gw.port)
            families = families_of(text)
            for name, (help_text, kind) in families.items():
                assert help_text and kind in ("counter", "gauge"), name
            got = metric_samples(text)  # prometheus-client's parser reads it all
            names = {name for name, _ in got}
            for needed in (
                "process_cpu_seconds_total",
                "process_resident_memory_bytes",
                "process_open_fds",
                "process_start_time_seconds",
                "uvgate_ws_messages_received_total",
                "uvgate_ws_received_bytes_total",
                "uvgate_ws_messages_sent_total",
                "uvgate_ws_sent_bytes_total",
                "uvgate_ws_opened_total",
                "uvgate_ws_closed_total",
                "uvgate_ws_open",
                "uvgate_pusher_connections",
            ):
                assert needed in names, needed
            # Every sample names its worker; no family without samples' HELP.
            assert all(dict(labels).get("worker") == "0" for _, labels in got)
            response = await raw_request(gw, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"content-type: text/plain; version=0.0.4" in response.lower()

    arun(main())


def test_opened_equals_closed_plus_open_after_good_refused_and_timed_out(arun):
    async def main():
        async with running_gateway(auth_timeout=0.3, pusher=False) as gw:
            url = f"ws://127.0.0.1:{gw.port}/ws"
            kept = await connect(url)
            await kept.send(auth_message("kept"))
            await kept.recv()
            async with connect(url) as good:  # authenticated, then closed by the client
                await good.send(auth_message("good"))
                await good.recv()
            async with connect(url) as bad:  # refused at authentication
                await bad.send(json.dumps({"type": "auth", "token": "nope"}))
                await bad.recv()
                await bad.wait_closed()
            async with connect(url) as silent:  # never authenticates: timed out
                await silent.wait_closed()
            waiting = await connect(url)  # still authenticating when scraped
            await raw_request(gw, b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP
            for _ in range(50):
                if not gw.timers.closing:
                    break
                await asyncio.sleep(0.02)
            got = metric_samples(await scrape(gw.port))

            def value(name: str) -> float:
                return sample(got, name, worker="0")

            # "waiting" may have timed out too by now (a loaded machine is slow).
            waited_out = value("uvgate_auth_timeouts_total") - 1
            assert waited_out in (0, 1)
            assert value("uvgate_ws_opened_total") == 5
            assert value("uvgate_ws_closed_total") == 3 + waited_out
            assert value("uvgate_ws_open") == 2 - waited_out  # kept (+ waiting)
            assert value("uvgate_ws_opened_total") == (
                value("uvgate_ws_closed_total") + value("uvgate_ws_open")
            )
            assert value("uvgate_connections") == 1
            assert value("uvgate_auth_failed_total") == 2 + waited_out  # bad token, timeouts
            await kept.close()
            await waiting.close()

    arun(main())


def test_messages_and_bytes_in_and_out_are_exact(arun):
    async def main():
        async with running_gateway(pusher=False) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(upgrade_request())
            await reader.readuntil(b"\r\n\r\n")
            before = (gw.stats.ws_received_bytes, gw.stats.ws_sent_bytes)
            assert before == (0, 0)
            auth = encode_client_frame(OP_TEXT, auth_message("bytes").encode())
            writer.write(auth)
            ack = await reader.read(4096)
            hello = encode_client_frame(OP_TEXT, b"x" * 10)
            writer.write(hello)
            echo = await reader.readexactly(len(encode_text("x" * 10)))
            close = encode_client_frame(OP_CLOSE, (1000).to_bytes(2, "big"))
            writer.write(close)
            answer = await reader.read(4096)
            writer.close()
            stats = gw.stats
            assert stats.ws_messages_received == 2  # the auth message and "x" * 10
            assert stats.ws_received_bytes == len(auth) + len(hello) + len(close)
            assert stats.ws_messages_sent == 2  # auth_ok and the echo
            assert stats.ws_sent_bytes == len(ack) + len(echo) + len(answer)
            assert answer[:1] == b"\x88"  # a control frame: bytes, not a message

    arun(main())


def test_a_broadcast_counts_every_copy(arun):
    async def main():
        async with running_gateway(app="chat", pusher=False) as gw:
            url = f"ws://127.0.0.1:{gw.port}/ws"
            clients = []
            for i in range(3):
                ws = await connect(url)
                await ws.send(auth_message(f"u{i}"))
                await ws.recv()
                clients.append(ws)
            sent_before = gw.stats.ws_messages_sent
            bytes_before = gw.stats.ws_sent_bytes
            delivered = gw.registry.broadcast(None, {"hello": "all"})
            assert delivered == 3
            for ws in clients:
                await ws.recv()
            assert gw.stats.ws_messages_sent - sent_before == 3
            frame = len(encode_text(json.dumps({"hello": "all"}, separators=(",", ":"))))
            assert gw.stats.ws_sent_bytes - bytes_before == 3 * frame
            for ws in clients:
                await ws.close()

    arun(main())


def test_pusher_series_per_app(arun):
    async def main():
        async with running_gateway() as gw:
            url = f"ws://127.0.0.1:{gw.port}/app/{DEV_APP.key}?protocol=7&client=js"
            a = await connect(url)
            b = await connect(url)
            for ws in (a, b):
                await ws.recv()  # connection_established
            await a.send(json.dumps({"event": "pusher:ping", "data": {}}))
            await a.recv()
            body = {"name": "flash", "channels": ["x", "y"], "data": "{}"}
            assert (
                await call(gw.port, DEV_APP, "POST", f"/apps/{DEV_APP.id}/events", body)
            ).status == 200
            got = metric_samples(await scrape(gw.port))
            app = {"worker": "0", "app_id": DEV_APP.id}
            assert sample(got, "uvgate_pusher_connections", **app) == 2
            assert sample(got, "uvgate_pusher_messages_received_total", **app) == 1
            assert sample(got, "uvgate_pusher_api_events_total", **app) == 2
            assert sample(got, "uvgate_pusher_api_requests_total", **app, status="200") == 1
            await a.close()
            await b.close()
            # Back to 0 once both have closed.
            for _ in range(200):
                got = metric_samples(await scrape(gw.port))
                if sample(got, "uvgate_pusher_connections", **app) == 0:
                    break
                await asyncio.sleep(0.01)
            assert sample(got, "uvgate_pusher_connections", **app) == 0

    arun(main())


def test_snapshots_round_trip_and_merge():
    first = [Metric.single("uvgate_x_total", "counter", "x", 2)]
    from gateway.metrics import PartsCollector, WorkerLabel

    w0 = WorkerLabel([PartsCollector(lambda: first)], 0)
    w1 = WorkerLabel([PartsCollector(lambda: first)], 1)
    merged = merge([families_from(snapshot(w0)), families_from(snapshot(w1))])
    assert len(merged) == 1
    text = render(merged).decode()
    assert text.count("# HELP uvgate_x_total x") == 1
    got = metric_samples(text)
    assert (
        sample(got, "uvgate_x_total", worker="0") == sample(got, "uvgate_x_total", worker="1") == 2
    )
    with pytest.raises(ValueError, match="not a metrics snapshot"):
        families_from(b"{}")
    # A family whose type disagrees (another version of a worker) is not mixed in.
    gauge = Family("uvgate_x", "x", "gauge")
    gauge.add_sample("uvgate_x", {}, 1)
    assert len(merge([merged, [gauge]])[0].samples) == 2


# -- one scrape for the whole instance ---------------------------------------------------------
def test_with_two_workers_one_scrape_adds_up_to_the_instance():
    with LiveServer("--workers", "2", "--no-pusher", "--secret", SECRET) as server:

        async def main() -> None:
            per_worker = {0: 0, 1: 0}
            held = []
            for i in range(30):
                ws = await connect(f"ws://127.0.0.1:{server.port}/ws")
                await ws.send(json.dumps({"type": "auth", "token": issue_token(SECRET, f"u{i}")}))
                per_worker[owner_of(json.loads(await ws.recv())["id"])[1]] += 1
                held.append(ws)
            assert per_worker[0] and per_worker[1]
            for _ in range(4):  # whichever worker the kernel hands the scrape to
                got = metric_samples(await scrape(server.port))
                for worker in ("0", "1"):
                    assert sample(got, "uvgate_worker_up", worker=worker) == 1
                    opened = sample(got, "uvgate_ws_opened_total", worker=worker)
                    assert opened == per_worker[int(worker)]
                    assert sample(got, "uvgate_ws_open", worker=worker) == opened
                    assert sample(got, "process_open_fds", worker=worker) > 0
                total = sum(
                    sample(got, "uvgate_ws_messages_received_total", worker=w) for w in "01"
                )
                assert total == 30
            for ws in held:
                await ws.close()

        run_checked(main())


def _workers_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(p) for p in fh.read().split()]


def test_a_stuck_worker_is_reported_down_and_a_killed_one_restarted():
    import os
    import signal

    with LiveServer("--workers", "2", "--no-pusher", "--secret", SECRET) as server:
        first, second = _workers_of(server.proc.pid)
        os.kill(second, signal.SIGSTOP)  # stuck: it cannot answer its siblings
        try:

            async def main() -> dict[str, float]:
                # The kernel may hand a scrape to the stuck worker: try until the live
                # one answers (it waits up to 2 s for its sibling, then says it is down).
                for _ in range(20):
                    try:
                        async with asyncio.timeout(4):
                            got = metric_samples(await scrape(server.port))
                    except TimeoutError:
                        continue
                    return {w: sample(got, "uvgate_worker_up", worker=w) for w in "01"}
                raise AssertionError("no scrape answered")

            up = run_checked(main())
            assert sorted(up.values()) == [0, 1]
            server.wait_log("worker did not answer the metrics scrape")
        finally:
            os.kill(second, signal.SIGCONT)
        mark = server.mark()
        os.kill(first, signal.SIGKILL)
        server.wait_log(r"exited unexpectedly \(-9\); restarting", start=mark)
        server.wait_log("listening", start=mark)

        async def after() -> None:
            for _ in range(10):
                got = metric_samples(await scrape(server.port))
                if all(sample(got, "uvgate_worker_up", worker=w) == 1 for w in "01"):
                    return
                await asyncio.sleep(0.2)
            raise AssertionError("the restarted worker never answered a scrape")

        run_checked(after())
        assert len(_workers_of(server.proc.pid)) == 2
