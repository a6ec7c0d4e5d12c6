"""One client connection of core/server.py: the request/response loop on the socket.

Rules:
- Two tasks take turns at reading (see `Connection`). EOF or reset cancels the connection
  at once, including a running handler or stream (the proxy relies on this to cancel
  upstream requests). A client that half-closes after its request counts as gone.
  Pipelined requests are parsed as they arrive and queued, never lost; the reader stops
  reading after a budget of bytes while a request is served (TCP backpressure).
- A handler exception answers 500 with a small JSON body and closes the connection;
  writing the handler's response (its head, body or stream, and its `after`) is
  core/server_write.py's `ResponseWriter`.
- Writes go straight to the socket on POSIX; trio only when the kernel buffer is full.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import trio

from core.http import Request, Response
from core.http1 import CONTINUE, ParsedRequest, RequestParser
from core.server_write import ERRORS, ResponseWriter
from core.sockets import can_go_direct, receive, send_all

if TYPE_CHECKING:
    from core.server import ServerLimits

__all__ = ["DISCONNECT_ERRORS", "Connection", "ServerSide"]

log = logging.getLogger("ccx.server")

RECEIVE_SIZE = 64 * 1024
# After an error response we stop writing and read (discard) what the client still sends for
# a moment: closing with unread bytes makes the kernel send RST, which can destroy our
# response in the client's receive buffer before it reads it.
LINGER_SECONDS = 1.0
LINGER_BYTES = 4 * 1024 * 1024

DISCONNECT_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError)


class ServerSide(Protocol):
    """What a connection needs of its server."""

    handler: Callable[[Request], Awaitable[Response]]
    limits: ServerLimits
    draining: bool


def _peer(stream: trio.SocketStream) -> str:
    try:
        addr = stream.socket.getpeername()
    except OSError:
        return ""
    if isinstance(addr, tuple):
        host = addr[0]
        return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
    return str(addr)


class _Worker:
    """One of a connection's two tasks. At any time one of them reads the socket (the
    reader) and the other serves a request or waits for its turn to read."""

    __slots__ = ("scope", "turn")

    def __init__(self) -> None:
        self.scope = trio.CancelScope()  # cancelled on a receive timeout while it reads
        self.turn = trio.Event()  # set when the reading passes to this worker


class Connection:
    """One client connection: a request parser and two tasks that take turns, under one
    nursery.

    The reader owns `receive_some` and feeds the parser (llhttp runs right there, in C).
    When a whole request is in and nothing is being served, the reader serves it itself and
    hands the reading to the other task: the request goes to the handler in the same
    scheduler pass its last byte arrived in (a reader that woke a separate request task
    cost one more pass, on every request's latency). The new reader keeps watching the
    socket while the handler runs: on EOF or reset it cancels the connection's nursery,
    which stops the handler or stream at once (the proxy relies on this to cancel upstream
    requests). Pipelined requests that arrive meanwhile are parsed and queued, and the
    serving task answers them in order; the reader stops after `budget` bytes, so a client
    cannot make us buffer without bound.

    Receive timeouts (keep-alive while idle, request_timeout once a request started, none
    while a request is served) are a timestamp here, checked by the server's sweeper
    (`_Server.sweep`), which cancels the reader's long-lived scope: moving a trio deadline
    costs a few microseconds, and a request used to move four.
    """

    __slots__ = (
        "budget",
        "client",
        "direct",
        "eof",
        "everything",
        "failed",
        "fed",
        "idle",
        "limits",
        "parser",
        "progress",
        "reader",
        "reading",
        "server",
        "serving",
        "since",
        "stream",
        "workers",
        "writer",
    )

    def __init__(self, server: ServerSide, stream: trio.SocketStream) -> None:
        self.server = server
        self.limits = limits = server.limits
        self.stream = stream
        self.client = _peer(stream)
        self.direct = can_go_direct(stream)
        self.writer = ResponseWriter(self._send, self.client)
        self.parser = RequestParser(
            max_header_bytes=limits.max_header_bytes,
            max_body_bytes=limits.max_body_bytes,
            client=self.client,
            read_size=RECEIVE_SIZE,
        )
        self.everything: trio.CancelScope | None = None  # the connection's nursery
        self.workers = (_Worker(), _Worker())
        self.reader = self.workers[0]  # the task reading now
        self.serving = False  # a task is running the handler or sending a response
        self.idle = False  # waiting for the first byte of a request: drain may close us
        self.reading = False  # part of a request has arrived: a timeout now answers 408
        self.since = 0.0  # when `idle` or `reading` began (trio time)
        self.failed = False  # an error answer was sent: the connection is closing
        self.eof = False  # the client closed (or reset) its side
        self.budget = limits.max_header_bytes + 2 * RECEIVE_SIZE
        self.fed = 0  # bytes read while a request is served
        self.progress: trio.Event | None = None  # the reader waits for a response to end

    def close_if_idle(self) -> None:
        if self.idle and not self.serving:
            self.reader.scope.cancel()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self.everything = nursery.cancel_scope
            first, second = self.workers
            nursery.start_soon(self._work, second)
            await self._work(first)

    async def _work(self, me: _Worker) -> None:
        """One task's life: read while it is the reader; serve the request it read."""
        with me.scope:
            while True:
                if self.reader is not me:
                    await me.turn.wait()
                parsed = await self._next_request(me)
                if parsed is None or not await self._serve(me, parsed):
                    break
        if me.scope.cancelled_caught and self.reading and not self.failed:
            await self._fail(408)
        if self.everything is not None:
            self.everything.cancel()

    # -- reading -------------------------------------------------------------------------

    async def _next_request(self, me: _Worker) -> ParsedRequest | None:
        """Read until a whole request is in and nothing is being served; None when the
        connection should close (any error answer has been sent)."""
        parser = self.parser
        while True:
            if self.serving:
                # Queue what comes; the serving task answers it in order. An error answer,
                # a `100 Continue` or a full budget waits for the response in progress.
                if parser.error is not None or parser.wants_continue or self.fed > self.budget:
                    self.progress = progress = trio.Event()
                    await progress.wait()
                    continue
            elif parser.ready:
                return parser.ready.popleft()
            elif parser.error is not None:
                await self._fail(parser.error)
                return None
            elif not self._arm():
                return None
            elif parser.wants_continue:
                parser.wants_continue = False
                if not await self._send(CONTINUE):
                    return None
            try:
                data = await receive(self.stream, RECEIVE_SIZE, direct=self.direct)
            except DISCONNECT_ERRORS:
                data = b""
            self.idle = False
            if not data:
                self.eof = True
                if self.everything is not None:
                    self.everything.cancel()  # the client left: stop handler / stream now
                return None
            if self.serving:
                self.fed += len(data)
            parser.feed(data)

    def _arm(self) -> bool:
        """Start the receive timeout for the state of the connection (nothing is being
        served); False when a drain should close it now."""
        if self.parser.in_message:
            if not self.reading:  # the first bytes arrived, or came with the last request
                self.reading = True
                self.since = trio.current_time()
        elif self.server.draining:
            return False
        elif not self.idle:
            self.idle = True
            self.since = trio.current_time()
        return True

    def expire(self, now: float) -> None:
        """Called by the sweeper: cancel the reader if its receive timeout ran out."""
        if self.serving:
            return
        if self.reading:
            limit = self.limits.request_timeout
        elif self.idle:
            limit = self.limits.keepalive_timeout
        else:
            return
        if now - self.since >= limit:
            self.reader.scope.cancel()

    # -- serving -------------------------------------------------------------------------

    async def _serve(self, me: _Worker, parsed: ParsedRequest) -> bool:
        """Serve `parsed`, then whatever was queued behind it, while the other task reads.
        True when the connection may serve another request."""
        self.reading = False  # the handler is never cut by receive timeouts
        self.serving = True
        self.fed = 0
        me.turn = trio.Event()  # spent (also one given before this task first ran)
        first, second = self.workers
        self.reader = other = second if me is first else first
        other.turn.set()
        while True:
            if not await self._respond(parsed):
                return False
            self.fed = 0
            if self.parser.ready:
                parsed = self.parser.ready.popleft()
                continue
            self.serving = False
            if self.progress is not None:  # the reader waits to answer an error, ...
                self.progress.set()
                self.progress = None
            elif not self._arm():
                self.reader.scope.cancel()  # draining: the reader closes the connection
            return True

    # -- writing -------------------------------------------------------------------------

    async def _send(self, data: bytes) -> bool:
        """Send all of `data` (straight to the socket, see core.sockets); False when the
        client is gone. Streams yield in `_send_stream`."""
        try:
            await send_all(self.stream, data, direct=self.direct)
        except (*DISCONNECT_ERRORS, OSError):
            self.eof = True
            return False
        return True

    async def _fail(self, status: int) -> None:
        """Answer a protocol-level error, then close politely: stop writing and read (drop)
        what the client still sends for a moment (see LINGER_SECONDS). Only the reader
        calls this."""
        self.failed = True
        head, body = ERRORS[status]
        if not await self._send(head + body):
            return
        with trio.move_on_after(LINGER_SECONDS):
            try:
                await self.stream.send_eof()
                discarded = 0
                while discarded <= LINGER_BYTES:
                    data = await receive(self.stream, RECEIVE_SIZE, direct=self.direct)
                    if not data:
                        return
                    discarded += len(data)
            except DISCONNECT_ERRORS:
                return

    async def _respond(self, parsed: ParsedRequest) -> bool:
        """Run the handler and send its response (the reader cancels both if the client
        goes away). True when the connection may serve another request. One function, not
        two: every await level is passed twice on each wakeup of the handler's waits."""
        if self.eof:
            return False  # the client left before we even started
        request = parsed.request
        try:
            response = await self.server.handler(request)
        except Exception:
            log.exception(
                "handler failed: %s %s from %s", request.method, request.path, request.client
            )
            await self.writer.internal_error(request.method == "HEAD")
            return False
        keep = await self.writer.write(parsed, response, draining=self.server.draining)
        return keep and parsed.keep_alive and not self.eof and not self.server.draining
