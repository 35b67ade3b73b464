"""Bounds on what one client can make the model server hold: a JSON-only, size- and
depth-bounded request body, read within a deadline; request headers within the same
deadline (a client that connects and stalls is answered 408 and dropped).

All of it runs on the event loop, so a stalled or hostile client never blocks the others.
"""

from __future__ import annotations

import asyncio
import json

import h11
from starlette.exceptions import HTTPException
from starlette.requests import Request
from uvicorn.protocols.http.h11_impl import H11Protocol

from httpbounds import DRAIN_MAX_BYTES, discard_body, is_json, worth_draining

# Vertex AI online prediction refuses bodies over 1.5 MB before they reach us; match it.
MAX_BODY_BYTES = 1_500_000
# Deeper than any predict body needs; json.loads would recurse (and fail with a 500) far
# deeper down.
MAX_JSON_DEPTH = 32


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """True if arrays/objects nest deeper than `limit` (brackets inside strings ignored)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # cannot nest deeper than it has brackets
    depth, in_string, escaped = 0, False, False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


async def _read_bounded(request: Request) -> bytes | None:
    """The body, or None once it grew past MAX_BODY_BYTES (the rest is left unread)."""
    # Read in chunks so an oversized body is refused without buffering all of it.
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_body(request: Request, timeout_s: float):
    """The request's JSON body, or HTTPException: 415 (not JSON), 413 (too large),
    408 (not received within `timeout_s`), 400 (too deep or not valid JSON)."""
    content_type = request.headers.get("content-type", "")
    if not is_json(content_type):
        raise HTTPException(415, f"unsupported content type {content_type[:100]!r}: send JSON")
    try:
        body = await asyncio.wait_for(_read_bounded(request), timeout_s)
    except TimeoutError:
        raise HTTPException(408, f"request body not received within {timeout_s:g} s") from None
    if body is None:
        # Drain what the client is still sending (bounded) so it reads the 413 instead of
        # a connection reset (httpbounds/drain.py).
        if worth_draining(request.headers):
            await discard_body(request.receive, DRAIN_MAX_BYTES - MAX_BODY_BYTES)
        raise HTTPException(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if json_depth_exceeds(body, MAX_JSON_DEPTH):
        raise HTTPException(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(body)
    except ValueError as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise HTTPException(400, f"invalid JSON: {exc}") from None


_TIMEOUT_BODY = json.dumps(
    {"error": {"code": 408, "message": "request headers not received in time"}}
).encode()


def header_timeout_protocol(timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, plus a deadline for each request's headers (uvicorn has
    none: a client that connects and sends half a request line would hold its
    connection forever). Past the deadline it answers 408 and closes."""

    class HeaderTimeoutProtocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            # h11 keeps the client IDLE until a request's headers are complete.
            if self.conn.their_state is h11.IDLE:
                self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._disarm()  # keep-alive: uvicorn's own idle timeout takes over

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(timeout_s, self._expired)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expired(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            if self.cycle is not None and not self.cycle.response_complete:
                return  # a response is being written: not a stalled header
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"connection: close\r\ncontent-length: "
                + str(len(_TIMEOUT_BODY)).encode()
                + b"\r\n\r\n"
                + _TIMEOUT_BODY
            )
            self.transport.close()

    return HeaderTimeoutProtocol
