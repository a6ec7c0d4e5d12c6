"""One upstream HTTP/1.1 connection on the wire: request bytes out, httptools events in.

Owns: the origin type, serialising a request into one buffer (validated), parsing the
response head and body with httptools (llhttp), and the verdict whether the connection may
carry another request. The pool and the error mapping live in core/upstream.py.

Rules:
- Why httptools rather than h11: one h11 request/response cycle cost about 104 us of CPU
  here, llhttp parses the same in about 4 us; the proxy's budget is 0.5 ms of CPU per
  request and 20 us per relayed stream event.
- A fresh parser per request cycle (0.3 us), so no parser state crosses requests.
- Parser callbacks only record, never raise: an exception inside an llhttp callback comes
  back wrapped in a callback error and loses its meaning.
- Keep-alive needs all of: llhttp's verdict at the end of the message (read inside the
  callback: llhttp resets it right after), an end given by the framing (not by EOF), and
  no byte after the message. Anything else closes the connection.
- A response framed by neither Content-Length nor chunked coding ends at EOF.
- 1xx interim responses (100 Continue, 103 Early Hints) are skipped.
- The response head is capped (64 KiB, as with h11 before) so a bad upstream cannot grow
  memory; header names come out lowercase and values without surrounding whitespace.
"""

from __future__ import annotations

import re
import select
from enum import Enum
from typing import Final, Literal, NamedTuple

import httptools
import trio

from core.sockets import can_go_direct, receive, send_all

Headers = list[tuple[bytes, bytes]]

READ_SIZE: Final = 65536
MAX_HEAD: Final = 64 * 1024
# Bodies up to this size go out joined to the head in one send; larger ones are not copied.
_JOIN_MAX: Final = 64 * 1024
_FRAMING: Final = frozenset((b"content-length", b"transfer-encoding"))
_OWN_HEADERS: Final = frozenset((b"host", b"content-length", b"transfer-encoding"))
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Deleting every byte a head may carry leaves its control bytes: only its own line ends,
# if no value smuggles a CR, LF, NUL or other control byte (tab is allowed in values).
_PLAIN: Final = bytes(c for c in range(256) if c == 9 or 0x20 <= c != 0x7F)
# Header names already checked: the same dozen names come with every request.
_GOOD_NAMES: set[bytes] = set()
_GOOD_NAMES_MAX: Final = 4096


class HttpProtocolError(Exception):
    """The upstream broke HTTP/1.1 in a way llhttp cannot see (EOF, an oversized head)."""


# What the network, TLS and the parser raise while a request is in flight.
EXCHANGE_ERRORS: Final[tuple[type[Exception], ...]] = (
    OSError,  # includes ssl.SSLError and ConnectionResetError
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    httptools.HttpParserError,
    httptools.HttpParserUpgrade,  # not an HttpParserError: a 101 we never asked for
    HttpProtocolError,
)
_PARSE_ERRORS: Final = (httptools.HttpParserError, httptools.HttpParserUpgrade)


class Origin(NamedTuple):
    """Where a connection goes; the pool's key (a tuple: hashed in C, twice per request)."""

    scheme: Literal["http", "https"]
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


class PoolState(Enum):
    IDLE = "idle"
    ACTIVE = "active"
    CLOSED = "closed"


def encode_head(
    method: bytes, path: bytes, host: bytes, headers: Headers, length: int | None
) -> bytes | None:
    """The request head, or None if a header name or any value is not valid HTTP.

    Host and Content-Length are ours: the caller's copies (and Transfer-Encoding) are
    dropped, a second copy would be a protocol error. Values are checked on the joined head
    in one C pass (a regex over it cost several times more).
    """
    parts = [method, b" ", path, b" HTTP/1.1\r\nhost: ", host, b"\r\n"]
    line_ends = 3  # the request line, host, the blank line
    for name, value in headers:
        if name.lower() in _OWN_HEADERS:
            continue
        if name not in _GOOD_NAMES and not _good_name(name):
            return None
        parts += (name, b": ", value, b"\r\n")
        line_ends += 1
    if length is not None:
        parts += (b"content-length: ", b"%d" % length, b"\r\n")
        line_ends += 1
    parts.append(b"\r\n")
    head = b"".join(parts)
    return head if head.translate(None, _PLAIN) == b"\r\n" * line_ends else None


def _good_name(name: bytes) -> bool:
    if _TOKEN.fullmatch(name) is None:
        return False
    if len(_GOOD_NAMES) < _GOOD_NAMES_MAX:
        _GOOD_NAMES.add(name)
    return True


class Connection:
    """One HTTP/1.1 connection: a trio stream plus the parser state of the current cycle."""

    __slots__ = (
        "aborted",
        "body",
        "complete",
        "direct",
        "framed",
        "head_done",
        "head_size",
        "headers",
        "idle_since",
        "interim",
        "keep_alive",
        "on_body",
        "origin",
        "parser",
        "received",
        "state",
        "status",
        "stream",
        "trailing",
    )

    def __init__(self, stream: trio.abc.Stream, origin: Origin) -> None:
        self.stream = stream
        self.origin = origin
        self.direct = can_go_direct(stream)  # write straight to the socket
        self.state = PoolState.ACTIVE
        self.idle_since = 0.0  # trio time it went back to the pool
        self.aborted = False  # closed from outside mid-exchange (a deadline): never retried
        self.begin()

    def begin(self) -> None:
        """Reset for a new request cycle."""
        self.body: list[bytes] = []
        # httptools looks its callbacks up once, when the parser is made: the body callback
        # is the list's own append, no Python frame per HTTP chunk (a stream sends one
        # chunk per event, and an upstream answering at once sends them all in one read).
        self.on_body = self.body.append
        self.parser = httptools.HttpResponseParser(self)
        self.received = False  # any response byte arrived in this cycle
        self.head_size = 0
        self.status = 0
        self.headers: Headers = []
        self.framed = False  # Content-Length or chunked: the body does not end at EOF
        self.interim = False
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.trailing = False  # bytes after the end of the message

    # -- I/O ---------------------------------------------------------------------------------

    async def send_request(self, head: bytes, body: bytes) -> None:
        if len(body) <= _JOIN_MAX:
            await self._send(head + body)  # one write, one segment for small posts
        else:
            await self._send(head)
            await self._send(body)

    async def _send(self, data: bytes) -> None:
        await send_all(self.stream, data, direct=self.direct)

    async def read_head(self) -> None:
        """Read until the final response's status and headers are parsed."""
        while not self.head_done:
            data = await receive(self.stream, READ_SIZE, direct=self.direct)
            if not data:
                raise HttpProtocolError("connection closed before a response")
            self.received = True
            self.head_size += len(data)
            self._feed(data)
            if not self.head_done and self.head_size > MAX_HEAD:
                raise HttpProtocolError("response head too large")

    async def read_body(self) -> None:
        """One network read into `body`; EOF ends an unframed body and breaks a framed one."""
        data = await receive(self.stream, READ_SIZE, direct=self.direct)
        if data:
            self._feed(data)
        elif self.framed:
            raise HttpProtocolError("connection closed mid-body")
        else:
            self.complete = True  # keep_alive stays False: the server closed

    def _feed(self, data: bytes | bytearray) -> None:
        try:
            self.parser.feed_data(data)
        except _PARSE_ERRORS:
            if not self.complete:
                raise
            # Junk after a complete answer: the answer stands, the connection is done.
            self.trailing = True

    def take_body(self) -> bytes:
        """Body bytes parsed so far, joined: one chunk per network read, not per HTTP chunk."""
        parts = self.body
        if not parts:
            return b""
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()  # the same list: the parser appends to it
        return data

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.trailing

    def dead_while_idle(self) -> bool:
        """An idle connection that is readable got EOF (or junk): it must not be reused."""
        transport = self._transport()
        if transport is None:
            return False
        fd = transport.socket.fileno()
        if fd < 0:
            return True
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([fd], [], [], 0)[0])

    def abort_now(self) -> None:
        """Close the socket under an exchange in flight (from another task): its pending
        read or write fails, and the exchange's own error path does the pool accounting."""
        self.aborted = True
        transport = self._transport()
        if transport is not None:
            transport.socket.close()

    def close_now(self) -> None:
        """Close the socket synchronously, so pool state never waits on an await."""
        self.state = PoolState.CLOSED
        transport = self._transport()
        if transport is not None:
            transport.socket.close()

    def _transport(self) -> trio.SocketStream | None:
        stream = self.stream
        transport = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
        return transport if isinstance(transport, trio.SocketStream) else None

    # -- httptools callbacks (record only) ---------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            self.trailing = True  # a second message in the same read: never ours

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        value = value.rstrip(b" \t")  # llhttp strips the leading whitespace only
        self.headers.append((name, value))
        if name in _FRAMING and (name == b"content-length" or value.lower().endswith(b"chunked")):
            self.framed = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # interim: its message completes next, then the real one begins
            self.interim = True
            self.headers = []
            self.framed = False
            return
        self.status = status
        self.head_done = True

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.keep_alive = self.parser.should_keep_alive()  # llhttp resets it after this call
        self.complete = True
