"""Putting a handler's `Response` on the wire, for one connection of core/server_conn.py.

Rules:
- The head comes from `core.http1.response_head` (the framing policy); a response that
  cannot go out as it is (bad header, content-length mismatch, a body that is not bytes)
  answers 500 with a small JSON body instead, before any byte of it was sent.
- A `Response.stream` is always `aclose`d: when done, on error and on disconnect (shielded
  for a short grace period so it runs even when the surrounding scope is cancelled).
  `Response.after` is always called once the response is done with, after its last byte
  went out: the proxy's accounting runs there, off the client's latency.
- A stream's held-back start (`Response.body`) goes out in one write with the head.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio

from core.http import Response
from core.http1 import LAST_CHUNK, ParsedRequest, chunk, response_head

__all__ = ["ERRORS", "ResponseWriter"]

log = logging.getLogger("ccx.server")

# How long a stream's aclose() may run once its scope is cancelled (client gone, shutdown).
ACLOSE_GRACE = 5.0
# Sends skip trio's per-send yield (see core.sockets); a stream that never blocks still
# lets other tasks run every this many chunks.
YIELD_EVERY = 16


def _error_response(status: int, reason: str, kind: str, message: str) -> tuple[bytes, bytes]:
    """Prebuilt (head, body) of an error answer; the connection always closes after it."""
    body = json.dumps({"error": {"type": kind, "message": message}}, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\nserver: ccx-tray\r\n\r\n"
    ).encode()
    return head, body


# The connection's own error answers: (head, body) by status.
ERRORS = {
    400: _error_response(400, "Bad Request", "invalid_request", "malformed HTTP request"),
    408: _error_response(408, "Request Timeout", "timeout", "request not received in time"),
    413: _error_response(413, "Content Too Large", "request_too_large", "request body too large"),
    431: _error_response(
        431, "Request Header Fields Too Large", "request_too_large", "request headers too large"
    ),
    500: _error_response(500, "Internal Server Error", "internal", "internal error"),
}


class ResponseWriter:
    """Writes responses through `send(data) -> bool` (False: the client is gone).

    `write` returns True when the connection may serve another request as far as this
    response is concerned (it did not ask to close and went out whole)."""

    __slots__ = ("_client", "_send")

    def __init__(self, send: Callable[[bytes], Awaitable[bool]], client: str) -> None:
        self._send = send
        self._client = client  # for log lines

    async def internal_error(self, head_only: bool) -> bool:
        head, body = ERRORS[500]
        return await self._send(head if head_only else head + body)

    async def write(self, parsed: ParsedRequest, response: Response, *, draining: bool) -> bool:
        head_only = parsed.request.method == "HEAD"
        close = not parsed.keep_alive or draining
        try:
            if response.stream is None:
                return await self._body(parsed, response, head_only, close)
            try:
                return await self._stream(parsed, response, response.stream, head_only, close)
            finally:
                await _aclose_stream(response.stream)
        finally:
            if response.after is not None:
                _call_after(response.after)

    async def _body(
        self, parsed: ParsedRequest, response: Response, head_only: bool, close: bool
    ) -> bool:
        body = response.body
        try:
            if not isinstance(body, bytes):
                raise TypeError(f"response body must be bytes, not {type(body).__name__}")
            head = response_head(
                response.status,
                response.headers,
                body_length=len(body),
                head_only=head_only,
                http_10=parsed.http_10,
                close=close,
            )
        except Exception:  # InvalidResponse, a str body, ...: nothing was sent yet
            log.exception("handler returned an invalid response for %s", self._client)
            await self.internal_error(head_only)
            return False
        data = head.data + body if body and head.framing == "length" else head.data
        return await self._send(data) and not head.close

    async def _stream(
        self,
        parsed: ParsedRequest,
        response: Response,
        stream: AsyncIterator[bytes],
        head_only: bool,
        close: bool,
    ) -> bool:
        try:
            head = response_head(
                response.status,
                response.headers,
                body_length=None,
                head_only=head_only,
                http_10=parsed.http_10,
                close=close,
            )
        except Exception:  # InvalidResponse: nothing was sent yet
            log.exception("handler returned an invalid response for %s", self._client)
            await self.internal_error(head_only)
            return False
        framing = head.framing
        chunked = framing == "chunked"
        lead = response.body
        if lead and framing != "none":
            lead = chunk(lead) if chunked else lead
            if not await self._send(head.data + lead):
                return False
        elif not await self._send(head.data):
            return False
        if framing == "none":
            return not head.close
        sent = 0
        try:
            async for piece in stream:
                if piece and not await self._send(chunk(piece) if chunked else piece):
                    return False
                sent += 1
                if not sent % YIELD_EVERY:
                    await trio.lowlevel.checkpoint()  # fairness, should the stream never block
        except Exception:
            # Headers are out: all we can do is end without the last chunk, so the client
            # sees a truncated body rather than a clean end.
            log.exception("response stream failed for %s", self._client)
            return False
        if not chunked:
            return False  # HTTP/1.0: the body ends when the connection closes
        return await self._send(LAST_CHUNK) and not head.close


async def _aclose_stream(stream: AsyncIterator[bytes]) -> None:
    """Close a response stream even when our scope is cancelled (shielded, time-boxed).
    A stream whose `closed` says it already released everything is left alone: the
    shielded scope costs more than the rest of a short stream's ending."""
    aclose: Callable[[], Awaitable[Any]] | None = getattr(stream, "aclose", None)
    if aclose is None or getattr(stream, "closed", False):
        return
    with trio.move_on_after(ACLOSE_GRACE, shield=True):
        try:
            await aclose()
        except Exception:
            log.exception("response stream failed to close")


def _call_after(after: Callable[[], None]) -> None:
    try:
        after()
    except Exception:
        log.exception("response bookkeeping failed")
