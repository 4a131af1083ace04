"""Write the seed inputs of every target and the crash inputs of issue 11.

    python -m tests.fuzz.seeds          # (re)writes corpus/<target>/seed-* and crashes/

Seeds are meaningful, valid or nearly valid inputs in each target's input format, so
the fuzzer starts from real protocol shapes; ``make fuzz`` then merges what it finds and
minimizes each corpus (libFuzzer ``-merge=1``). Crash inputs are the ones that once made
a parser raise an undeclared error; they are replayed forever by test_replay.py.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import msgpack
import orjson

from protocol.frames import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, encode_client_frame
from protocol.pusher.signatures import body_md5, sign_api_request, sign_channel, sign_user

from .targets import CORPUS_DIR, CRASHES_DIR

MASK = b"\x37\xfa\x21\x3d"
UPGRADE = (
    b"GET /app/app-key?protocol=7&client=js&version=8.4.0 HTTP/1.1\r\n"
    b"Host: localhost:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def _upgrade(*extra: bytes) -> bytes:
    return UPGRADE + b"".join(h + b"\r\n" for h in extra) + b"\r\n"


def _cf(op: int, payload: bytes, **kw: bool) -> bytes:
    return encode_client_frame(op, payload, mask=MASK, **kw)


def _compressed(text: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def _deep(n: int) -> str:
    return "[" * n + "]" * n


def handshake() -> dict[str, bytes]:
    return {
        "upgrade": _upgrade(),
        "upgrade-deflate": _upgrade(
            b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
        ),
        "upgrade-deflate-params": _upgrade(
            b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover;"
            b" client_no_context_takeover; server_max_window_bits=10, permessage-deflate"
        ),
        "upgrade-subprotocol-origin": _upgrade(
            b"Sec-WebSocket-Protocol: chat, uvgate.json", b"Origin: http://example.com"
        ),
        "get-up": b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n",
        "http10": b"GET /up HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "post-body-pipelined": b"POST /apps/1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"\r\n{}GET /up HTTP/1.1\r\n\r\n",
        "post-chunked": b"POST /apps/1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n2;x=y\r\n{}\r\n0\r\nT: 1\r\n\r\nGET /up HTTP/1.1\r\n\r\n",
        "leading-crlf": b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    }


def handshake_diff() -> dict[str, bytes]:
    """The handshake seeds plus the shapes where the C scan must defer to Python."""
    return {
        **handshake(),
        "mixed-case-names": b"GET / HTTP/1.1\r\nHOST: x\r\nuPgRaDe: websocket\r\nX-A-b: 1\r\n\r\n",
        "values-ws-obs-text": b"GET /\xe9 HTTP/1.1\r\nX: \t a\xff b \t\r\nY:\r\nZ:   \r\n\r\n",
        "repeated": b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nA: 3\r\n\r\n",
        "bare-cr": b"GET / HTTP/1.1\r\nA: 1\rB: 2\r\n\r\n",
        "bare-lf": b"GET / HTTP/1.1\r\nA: 1\nB: 2\r\n\r\n",
        "nul-in-value": b"GET / HTTP/1.1\r\nA: 1\x00\r\n\r\n",
        "space-before-colon": b"GET / HTTP/1.1\r\nA : 1\r\n\r\n",
        "obs-fold": b"GET / HTTP/1.1\r\nA: 1\r\n  2\r\n\r\n",
        "http-2": b"GET / HTTP/2.0\r\nA: 1\r\n\r\n",
        "http-1-2": b"GET / HTTP/1.2\r\nA: 1\r\n\r\n",
        "tab-in-request-line": b"GET\t/ HTTP/1.1\r\n\r\n",
        "two-spaces": b"GET  / HTTP/1.1\r\n\r\n",
        "four-headers": b"PUT /x HTTP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
    }


def handshake_crashes() -> dict[str, bytes]:
    return {
        # Issue 11, crash 1: a2b_base64() raised ValueError on a non-ASCII key.
        "issue11-crash1-non-ascii-key": b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: \x80AAAAAAAAAAAAAAAAAAAAA==\r\n\r\n",
        # Issue 11, crash 2 (live form): int() on superscript digits in window bits.
        "issue11-crash2-superscript-window-bits": _upgrade(
            b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=\xb9"
        ),
        # Issue 11, crash 3: the gateway recursed per pipelined request (fixed in gateway/);
        # here the parser walks the same 198 requests.
        "issue11-crash3-pipelined-198": b"GET /up HTTP/1.1\r\n\r\n" * 198,
    }


def frames() -> dict[str, bytes]:
    text = "κόσμε hello".encode()
    bad = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited"
    deflate = 0b0010  # options: server side, DeflateParams(), limit 16
    big = 0b11000  # limit 1 MiB
    return {
        "text": bytes([big, 7]) + _cf(OP_TEXT, text),
        "binary-16bit": bytes([big, 3]) + _cf(OP_BINARY, bytes(range(256)) * 2),
        "fragmented": bytes([big, 9])
        + _cf(OP_TEXT, text[:3], fin=False)
        + _cf(OP_PING, b"p")
        + _cf(OP_CONT, text[3:]),
        "close": bytes([big, 1]) + _cf(OP_CLOSE, b"\x03\xe8bye"),
        "invalid-utf8-6.4.3": bytes([big, 2]) + _cf(OP_TEXT, bad),
        "too-big": bytes([0, 5]) + _cf(OP_TEXT, b"x" * 40),
        "compressed": bytes([deflate | big, 4])
        + _cf(OP_TEXT, _compressed(b"abcabcabc"), rsv1=True),
        "client-side": bytes([1 | big, 6]) + bytes([0x81, 5]) + b"hello",
        "length-64": bytes([big, 8]) + b"\x82\xff" + (70000).to_bytes(8, "big") + MASK + b"x" * 9,
    }


def deflate() -> dict[str, bytes]:
    return {
        "offer": b"\x00permessage-deflate; client_max_window_bits",
        "offer-params": b"\x00permessage-deflate; server_no_context_takeover; "
        b'client_max_window_bits="12"; server_max_window_bits=11, permessage-deflate',
        "inflate": b"\x01\x00\x03" + _compressed(b"hello hello hello"),
        "round-trip": b"\x02\x05" + b"\x05hello\x05hello\x00\x0bhello world",
    }


def codecs() -> dict[str, bytes]:
    return {
        "json": b"\x00" + orjson.dumps({"event": "x", "data": {"n": [1, 2.5, None, "é"]}}),
        "json-str": b"\x02" + '{"a":"\u20ac"}'.encode(),
        "msgpack": b"\x01" + msgpack.packb({"a": [1, b"\x00", 2.5, None, "é"]}, use_bin_type=True),
        "json-deep": b"\x00" + _deep(300).encode(),
    }


def _subscribe(channel: str, channel_data: str | None = None, auth: str | None = None) -> bytes:
    data: dict[str, str] = {"channel": channel}
    if auth is not None:
        data["auth"] = auth
    if channel_data is not None:
        data["channel_data"] = channel_data
    return orjson.dumps({"event": "pusher:subscribe", "data": data})


def pusher_messages() -> dict[str, bytes]:
    sign = 8
    presence_data = '{"user_id":"u1","user_info":{"name":"x"}}'
    user_data = '{"id":"u1","user_info":{"n":1},"watchlist":["u2"]}'
    return {
        "ping": b"\x00" + b'{"event":"pusher:ping","data":{}}',
        "subscribe-public": b"\x00" + _subscribe("chat"),
        "subscribe-private-signed": bytes([sign]) + _subscribe("private-a"),
        "subscribe-private-bad-auth": b"\x00" + _subscribe("private-a", auth="key-1:00"),
        "subscribe-presence-signed": bytes([sign]) + _subscribe("presence-a", presence_data),
        "subscribe-presence-valid-auth": b"\x00"
        + _subscribe(
            "presence-a",
            presence_data,
            sign_channel("key-1", "secret-1", "1.4242", "presence-a", presence_data),
        ),
        "subscribe-server-to-user": bytes([16]) + _subscribe("#server-to-user-u1"),
        "signin-signed": bytes([sign])
        + orjson.dumps({"event": "pusher:signin", "data": {"auth": "", "user_data": user_data}}),
        "signin-valid-auth": b"\x00"
        + orjson.dumps(
            {
                "event": "pusher:signin",
                "data": {
                    "auth": sign_user("key-1", "secret-1", "1.4242", user_data),
                    "user_data": user_data,
                },
            }
        ),
        "client-event": b"\x00"
        + orjson.dumps({"event": "client-typing", "channel": "private-a", "data": {"x": 1}}),
        "client-event-str": b"\x01"
        + orjson.dumps({"event": "client-t", "channel": "presence-a", "data": "é"}),
        "unknown": b"\x00" + b'{"event":"pusher:whatever"}',
    }


def pusher_crashes() -> dict[str, bytes]:
    deep = _deep(300)
    return {
        # Found by the audit for issue 11: orjson parses 1024 levels but encodes 254.
        "audit-deep-client-event-data": b"\x00"
        + ('{"event":"client-x","channel":"private-a","data":' + deep + "}").encode(),
        "audit-deep-presence-user-info": bytes([8])
        + _subscribe("presence-a", '{"user_id":"u","user_info":' + deep + "}"),
        "audit-presence-user-info-253-levels": bytes([8])
        + _subscribe("presence-a", '{"user_id":"u","user_info":' + _deep(253) + "}"),
        "audit-deep-signin-user-info": bytes([8])
        + orjson.dumps(
            {
                "event": "pusher:signin",
                "data": {"auth": "", "user_data": '{"id":"u","user_info":' + deep + "}"},
            }
        ),
    }


def httpapi() -> dict[str, bytes]:
    body = b'{"name":"e","channels":["a","presence-b"],"data":"{}","info":"subscription_count"}'
    path = "/apps/7/events"
    params = [("auth_key", "api-key"), ("auth_timestamp", "1700000000"), ("auth_version", "1.0")]
    params.append(("body_md5", body_md5(body)))
    params.append(("auth_signature", sign_api_request("api-secret", "POST", path, params)))
    query = "&".join(f"{k}={v}" for k, v in params).encode()
    batch = b'{"batch":[{"name":"e","channel":"a","data":"x","socket_id":"1.2"}]}'
    return {
        "trigger-signed-by-target": b"\x01POST\n" + path.encode() + b"\n\n" + body,
        "trigger-valid-signature": b"\x00POST\n" + path.encode() + b"\n" + query + b"\n" + body,
        "batch": b"\x01POST\n/apps/7/batch_events\n\n" + batch,
        "channels": b"\x01GET\n/apps/7/channels\nfilter_by_prefix=presence-&info=user_count\n",
        "channel": b"\x01GET\n/apps/7/channels/presence-x\ninfo=user_count,subscription_count\n",
        "terminate": b"\x01POST\n/apps/7/users/u1/terminate_connections\n\n",
    }


def chunked() -> dict[str, bytes]:
    return {
        "rfc": b"\x03\x05" + b"4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n",
        "extensions-trailers": b"\x02\x01" + b'3;a=1;b="q;\\"x"\r\nabc\r\n0;z\r\nT: v\r\n\r\nrest',
        "too-big": b"\x01\x02" + b"11\r\n" + b"x" * 17 + b"\r\n0\r\n\r\n",
        "hex-upper": b"\x03\x00" + b"00A\r\n0123456789\r\n0\r\n\r\n",
    }


def wsproto_diff() -> dict[str, bytes]:
    text = "κόσμε hello world".encode()
    return {
        "text": b"\x01\x00" + bytes([len(text)]) + text,
        "fragments-with-ping": b"\x05" + bytes([0x80 | (3 << 3)]) + b"\x00\x10" + b"a" * 16,
        "binary-ping-pong": b"\x07\x01\x00\x03abc\x02\x00\x01p\x03\x00\x01q",
        "close-reason": b"\x02\x0c\x00\x03bye",
        "close-long-reason": b"\x02\x0c\x00\xc8" + "é".encode() * 100,
    }


SEEDS = {
    "handshake": handshake,
    "frames": frames,
    "deflate": deflate,
    "codecs": codecs,
    "pusher_messages": pusher_messages,
    "httpapi": httpapi,
    "chunked": chunked,
    "wsproto_diff": wsproto_diff,
    "handshake_diff": handshake_diff,
}
CRASHES = {
    "handshake": handshake_crashes,
    "deflate": lambda: {
        # Issue 11, crash 2: negotiate() raised ValueError from int("\xb2").
        "issue11-crash2-negotiate": b"\x00"
        + "permessage-deflate;server_max_window_bits=\xb2".encode("latin-1"),
    },
    "pusher_messages": pusher_crashes,
}


def write(base: Path, prefix: str, table: dict[str, object]) -> int:
    count = 0
    for target, make in table.items():
        folder = base / target
        folder.mkdir(parents=True, exist_ok=True)
        for label, data in make().items():  # type: ignore[operator]
            (folder / f"{prefix}{label}").write_bytes(data)
            count += 1
    return count


def main() -> None:
    seeds = write(CORPUS_DIR, "seed-", SEEDS)  # type: ignore[arg-type]
    crashes = write(CRASHES_DIR, "", CRASHES)  # type: ignore[arg-type]
    print(f"{seeds} seeds in {CORPUS_DIR}, {crashes} crash inputs in {CRASHES_DIR}")


if __name__ == "__main__":
    main()
