"""The HTTP/1.1 connection of `atr serve`: uvicorn's h11 protocol, with what it leaves out.

- A deadline for each request's head, `HEAD_SECONDS` from the connection's start or the end of the
  previous answer: uvicorn times out a kept-alive connection only while no byte arrives, so a client
  sending one header line every few seconds held its connection for ever. Past the deadline, a head
  begun gets 408; a connection with nothing begun is closed quietly, as a kept-alive one is.
- What h11 refuses (a malformed request line, two different Content-Lengths, a head over `MAX_HEAD`)
  is answered as every other error is, an OpenAI-style JSON body, with its own status: 400, 414 for
  a request line over `MAX_HEAD`, 431 for headers over it. uvicorn answers these in text/plain. The
  first bytes of a TLS handshake (https:// to this http:// server) get a 400 that says so, at once.
- A body answered without being read (413) is read and dropped, so that the client, still sending,
  reads the answer instead of a reset: on a kept-alive connection as uvicorn does, but for at most
  `HEAD_SECONDS` and `DRAIN_BYTES`; where the connection closes after the answer (the client sent
  `Connection: close`), by a lingering close (`_Lingering`) of at most `DRAIN_SECONDS`.
- Over `limit_concurrency` connections or requests, 503 with Retry-After as JSON (uvicorn's is text/plain).
"""

from __future__ import annotations

import asyncio
import json
import sys
from http import HTTPStatus
from typing import Any

import h11
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_SECONDS = 15  # for each request's head; also how long a kept-alive connection may idle
MAX_HEAD = 65_536  # bytes: the request line, or the head as a whole
DRAIN_BYTES = 64_000_000  # of a body answered unread, read and dropped at most
DRAIN_SECONDS = 5  # how long a closing connection reads what the client still sends
RETRY_AFTER = "1"  # seconds, on 429 and 503
_TLS_HANDSHAKE = b"\x16"  # the first byte of a TLS record that opens a handshake


def error_body(status: int, message: str, code: str | int | None = None, param: str | None = None) -> bytes:
    """OpenAI's error body: `{"error": {"message", "type", "param", "code"}}` (the status as code by default)."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    error = {"message": message, "type": kind, "param": param, "code": status if code is None else code}
    return json.dumps({"error": error}, ensure_ascii=False).encode()


def error_response(
    status: int,
    message: str,
    code: str | int | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(error_body(status, message, code, param), status, headers, "application/json; charset=utf-8")


class _Lingering:
    """The connection's transport, whose `close` lingers while the client is still sending a body
    nobody will read: the answer goes out, the write side shuts, and what still comes is dropped
    until the client stops, for `DRAIN_SECONDS` and `DRAIN_BYTES` at most. Closing with data unread
    resets the connection, and a client still sending its body never reads the answer."""

    def __init__(self, transport: asyncio.Transport, protocol: Protocol):
        self.inner, self.protocol = transport, protocol
        self.lingering, self.dropped = False, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def is_closing(self) -> bool:
        return self.lingering or self.inner.is_closing()

    def close(self) -> None:
        if self.lingering or self.inner.is_closing() or self.protocol.conn.their_state is not h11.SEND_BODY:
            self.inner.close()
            return
        self.lingering = True
        try:
            self.inner.write_eof()
        except OSError:  # the client is gone already
            self.inner.close()
            return
        self.protocol.loop.call_later(DRAIN_SECONDS, self.inner.close)

    def drop(self, data: bytes) -> None:
        self.dropped += len(data)
        if self.dropped > DRAIN_BYTES:
            self.inner.close()


class Protocol(H11Protocol):
    """One client connection (uvicorn makes one per connection, `http=Protocol`)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.deadline: asyncio.TimerHandle | None = None
        self.linger: _Lingering | None = None
        # uvicorn's own answer over the limit is text/plain: the limit is checked here instead
        limit, self.limit_concurrency = self.limit_concurrency, None
        app = self.app

        async def limited(scope: Scope, receive: Receive, send: Send) -> None:
            # this connection and this request are counted already: over the limit is more than it
            if limit is not None and (len(self.connections) > limit or len(self.tasks) > limit):
                busy = "the server has too many connections; retry shortly"
                await error_response(503, busy, headers={"Retry-After": RETRY_AFTER})(scope, receive, send)
            else:
                await app(scope, receive, send)

        self.app = limited

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.linger = _Lingering(transport, self)
        super().connection_made(self.linger)  # type: ignore[arg-type]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def data_received(self, data: bytes) -> None:
        if data.startswith(_TLS_HANDSHAKE) and self.conn.their_state is h11.IDLE and not self.conn.trailing_data[0]:
            self._answer(HTTPStatus.BAD_REQUEST, "this server speaks plain HTTP: use http://, not https://")
            return
        assert self.linger is not None
        if self.linger.lingering:
            self.linger.drop(data)
            return
        if self.cycle is not None and self.cycle.response_complete and self.conn.their_state is h11.SEND_BODY:
            self.linger.drop(data)  # the rest of a body answered unread, on a kept-alive connection
            if self.linger.inner.is_closing():
                return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        """What h11 refuses; uvicorn calls this inside its `except h11.RemoteProtocolError`."""
        error = sys.exc_info()[1]
        status = HTTPStatus(getattr(error, "error_status_hint", 400))
        if status == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE and b"\n" not in self.conn.trailing_data[0]:
            self._answer(HTTPStatus.REQUEST_URI_TOO_LONG, f"the request line is over {MAX_HEAD} bytes")
        elif status == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE:
            self._answer(status, f"the request's head is over {MAX_HEAD} bytes")
        else:
            self._answer(status, f"Bad request syntax ({str(error or msg)[:200]})")

    def _arm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline = self.loop.call_later(HEAD_SECONDS, self._expired)

    def _expired(self) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE:  # no whole head in time
            if self.conn.trailing_data[0]:
                self._answer(HTTPStatus.REQUEST_TIMEOUT, f"the request's head took over {HEAD_SECONDS} s")
            else:
                self.transport.close()
        elif self.cycle is not None and self.cycle.response_complete and self.linger is not None:
            self.linger.inner.close()  # still sending a body answered unread

    def _answer(self, status: HTTPStatus, message: str) -> None:
        """An error written straight to the connection, which then closes: for what comes before (or
        instead of) a request the application could answer."""
        body = error_body(status, message)
        lines = [
            f"HTTP/1.1 {status.value} {status.phrase}",
            "content-type: application/json; charset=utf-8",
            f"content-length: {len(body)}",
            "connection: close",
        ]
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        self.transport.close()
        if self.access_log:
            client = f"{self.client[0]}:{self.client[1]} - " if self.client else ""
            self.access_logger.info('%s"-" %d %s', client, status.value, message)
