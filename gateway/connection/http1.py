"""HTTP/1.1 on the WebSocket port: requests, keep-alive, pipelining, async handlers.

Pipelined requests are served by one loop (``_serve_requests``), never by recursion: a
client that sends hundreds of requests in one segment gets them all answered, in order,
``Limits.max_pipelined`` per turn of the event loop. Between turns, and while an async
handler works, reading is paused (``flow.HTTP``), so the buffer holds at most what one
read brought.
"""

from __future__ import annotations

import asyncio
import inspect
from functools import partial

from gateway.connection.upgrade import Upgrade
from gateway.connstate import CLOSED, HANDSHAKE, HTTP
from gateway.errorlog import unexpected
from gateway.flow import HTTP as HTTP_WAIT
from gateway.http import HttpResponse
from protocol.chunked import ChunkedDecoder
from protocol.errors import HandshakeError
from protocol.handshake import Request, http_response, is_upgrade, parse_request


class Http1(Upgrade):
    __slots__ = ()

    def _receive_http(self, data: bytes) -> None:
        if self.buffer is None and self.request is None and self.state is HANDSHAKE:
            # Fast path: the whole upgrade request in one segment (the usual case),
            # parsed from ``data`` without copying it into a buffer.
            try:
                parsed = parse_request(data, allow_chunked=True)
            except HandshakeError as exc:
                self._reject(exc)
                return
            if parsed is not None:
                request, used = parsed
                if is_upgrade(request):
                    self._upgrade(request, data[used:])
                    return
                if used < len(data):
                    self.buffer = bytearray(data[used:])
                if self._admit(request):
                    self._serve_requests()
                return
        if self.buffer is None:
            self.buffer = bytearray(data)
        else:
            self.buffer += data
        self._serve_requests()

    def _admit(self, request: Request) -> bool:
        """A plain HTTP request: route it and check its size before reading a body."""
        if self.router.http_route(request.path) is None:
            self._reply(http_response(404, b"not found\n"), close=True)
            return False
        if request.content_length > self.ctx.limits.max_http_body:
            self._reply(http_response(413, b"request body too large\n"), close=True)
            return False
        if self.state is HANDSHAKE:
            self._move(HTTP)
        self.request = request
        return True

    def _serve_requests(self) -> None:
        """Serve every complete request in the buffer, in order, a bounded number per turn."""
        budget = self.ctx.limits.max_pipelined
        while self.state is HANDSHAKE or self.state is HTTP:
            buf = self.buffer
            request = self.request
            if request is None:
                if not buf:
                    break
                try:
                    parsed = parse_request(buf, allow_chunked=True)
                except HandshakeError as exc:
                    self._reject(exc)
                    return
                if parsed is None:
                    break  # an incomplete head: wait for more bytes
                request, used = parsed
                if is_upgrade(request):
                    rest = bytes(buf[used:])
                    self.buffer = None
                    self._upgrade(request, rest)
                    return
                del buf[:used]
                if not self._admit(request):
                    return
            chunked = None
            size = request.content_length
            if request.chunked:
                # RFC 9112 7.1 (the official Pusher libraries send Content-Length, but a
                # proxy or a hand-made client may not): decoded once all of it is in,
                # bounded by max_http_body like any body.
                try:
                    chunked = ChunkedDecoder(max_body=self.ctx.limits.max_http_body).feed(
                        buf or b""
                    )
                except HandshakeError as exc:
                    self._reject(exc)
                    return
                if chunked is None:
                    break
            elif size and (buf is None or len(buf) < size):
                break  # the body is not all here yet
            if not budget:
                # This turn's share is served: the rest waits for the next turn, and
                # reading stays paused until the backlog is gone.
                self.pause_reading_for(HTTP_WAIT)
                asyncio.get_running_loop().call_soon(self._serve_requests)
                return
            budget -= 1
            if chunked is not None:
                body, rest = chunked
                self.buffer = bytearray(rest) if rest else None
            elif size:
                assert buf is not None
                body = bytes(buf[:size])
                del buf[:size]
            else:
                body = b""
            if not self._serve_http(request, body):
                return  # an async handler answers later (reading paused)
        if self.buffer is not None and not self.buffer:
            self.buffer = None
        self.resume_reading_for(HTTP_WAIT)

    def _serve_http(self, request: Request, body: bytes) -> bool:
        """Answer one request; False if an async handler took it (answered later)."""
        handler = self.router.http_route(request.path)
        if handler is None:  # admitted, so routed: routes never go away
            self._reply(http_response(404, b"not found\n"), close=True)
            return True
        self.clear_deadline()
        try:
            result = handler(request, body, self)
        except Exception as exc:
            unexpected(exc, self, f"HTTP handler for {request.method} {request.path}")
            result = HttpResponse.text(500, "internal error")
        if type(result) is not HttpResponse and inspect.isawaitable(result):
            self.pause_reading_for(HTTP_WAIT)
            task = self.ctx.tasks.spawn(result)
            task.add_done_callback(partial(self._http_done, request))
            return False
        self._send_http(request, result)
        return True

    def _http_done(self, request: Request, task: asyncio.Future[HttpResponse]) -> None:
        if self.state is CLOSED:
            return
        if task.cancelled():
            self._reply(b"", close=True)
            return
        exc = task.exception()
        if exc is not None:
            unexpected(exc, self, f"HTTP handler for {request.method} {request.path}")
            response = HttpResponse.text(500, "internal error")
        else:
            response = task.result()
        self._send_http(request, response)
        self._serve_requests()  # the pipelined requests behind it, then read again

    def _send_http(self, request: Request, response: HttpResponse) -> None:
        keep = request.keep_alive and self.ctx.server.accepting
        raw = http_response(
            response.status,
            b"" if request.method == "HEAD" else response.body,
            content_type=response.content_type,
            headers=response.headers,
            keep_alive=keep,
        )
        if not keep:
            self._reply(raw, close=True)
            return
        self.transport.write(raw)
        # Keep-alive: back to waiting for the next request (possibly pipelined).
        self.request = None
        self._move(HANDSHAKE)
        self.set_deadline(self.ctx.limits.handshake_timeout)
