"""HTTP/1.1 on the wire, sans-IO: request parsing with httptools (llhttp, in C) and response
framing. No I/O and no trio here: core/server.py drives it.

What it owns and its rules:
- `RequestParser.feed(data)` parses whatever arrives, pipelined requests included, into
  `ParsedRequest`s queued in `ready`, in arrival order. A malformed request or a broken limit
  sets `error` (400, 413, 431) *after* the requests that were complete before it; from then
  on (and after a request that ends the connection) further data is ignored. `feed` never
  raises.
- Limits: llhttp has no header limit, so we count: a complete head by its parts (target,
  names, values), an incomplete one by the bytes fed while it is open (so a client cannot
  make httptools buffer a header without bound). A declared Content-Length over the body
  limit is refused at the head, before any `100 Continue`; chunked bodies as they arrive.
- Requests look the way h11 gave them: names lowercased, values without surrounding
  whitespace, HTTP/1.1 needs exactly one Host. Upgrade and CONNECT requests are served as
  ordinary requests, then the connection closes (we never switch protocols).
- Response side: `response_head` is the server's framing policy (content-length or chunked,
  `server`, `connection: close`); it validates like h11 did and raises `InvalidResponse`
  rather than put a header-injected or mis-framed response on the wire. The small framing
  helpers (`chunk`, `LAST_CHUNK`) are shared: they hold no server policy.
"""

from __future__ import annotations

import re
from collections import deque
from http import HTTPStatus
from typing import Literal, NamedTuple

import httptools

from core.http import Headers, Request

__all__ = [
    "CONTINUE",
    "LAST_CHUNK",
    "Framing",
    "InvalidResponse",
    "ParsedRequest",
    "RequestParser",
    "ResponseHead",
    "chunk",
    "response_head",
    "status_line",
]

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"
SERVER_HEADER = b"server: ccx-tray\r\n"
CLOSE_HEADER = b"connection: close\r\n"

# The same grammar h11 enforces (RFC 9110 token; field value without NUL, CR, LF or
# surrounding whitespace), so a handler cannot inject headers or split the response.
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+").fullmatch
_DIGITS = re.compile(rb"[0-9]{1,19}").fullmatch


class InvalidResponse(ValueError):
    """The handler's response cannot be put on the wire as it is (nothing was sent)."""


# Request headers the parser notes for itself (framing, the Host rule, 100-continue).
_NOTED = frozenset((b"content-length", b"host", b"expect"))


class _LimitExceeded(Exception):
    """Raised inside a parser callback to stop llhttp at once; carries the status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class ParsedRequest(NamedTuple):
    """A whole request off the wire (a tuple: built once per request, a frozen dataclass
    costs a call per field)."""

    request: Request
    keep_alive: bool  # the client lets us serve another request on this connection
    http_10: bool  # an HTTP/1.0 client: no chunked framing for it


class RequestParser:
    """Server-side request parser: bytes in, whole requests (or one error status) out.

    State the server reads between feeds: `ready`, `error`, `in_message` (a request has
    begun and is not complete: receive timeouts now answer 408), `wants_continue` (the
    current request's head asked `Expect: 100-continue` and no body byte came yet) and
    `changed` (something of the above moved since the server last cleared it).
    """

    __slots__ = (
        "_body",
        "_body_size",
        "_client",
        "_done",
        "_expect",
        "_fed",
        "_head_size",
        "_headers",
        "_hosts",
        "_in_head",
        "_length",
        "_max_body",
        "_max_header",
        "_parser",
        "_request",
        "_slack",
        "_url",
        "changed",
        "error",
        "in_message",
        "ready",
        "wants_continue",
    )

    def __init__(
        self, *, max_header_bytes: int, max_body_bytes: int, client: str, read_size: int
    ) -> None:
        self._max_header = max_header_bytes
        self._max_body = max_body_bytes
        self._client = client
        # An open head is counted by the bytes of whole reads, which may include the end of
        # the previous request: allow one read of slack before calling it too large.
        self._slack = read_size
        self.ready: deque[ParsedRequest] = deque()
        self.error: int | None = None
        self.in_message = False
        self.wants_continue = False
        self.changed = False
        self._done = False  # a request that ends the connection is complete: ignore the rest
        self._reset_message()
        self._parser = httptools.HttpRequestParser(self)

    def _reset_message(self) -> None:
        self._in_head = False
        self._url = b""
        self._headers: Headers = []
        self._hosts = 0
        self._head_size = 0
        self._length = -1
        self._expect = False
        self._body: list[bytes] = []
        self._body_size = 0
        self._fed = 0
        self._request: Request | None = None

    def feed(self, data: bytes | bytearray) -> None:
        if self._done or self.error is not None:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._end_at_upgrade()
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(cause.status if isinstance(cause, _LimitExceeded) else 400)
        except httptools.HttpParserError:
            if not self._done:  # llhttp also refuses data after `Connection: close`
                self._fail(400)
        else:
            if self.in_message:
                self._count_open_message(len(data))

    def _count_open_message(self, size: int) -> None:
        """Bound what an unfinished request may make httptools hold (it buffers a header
        name or value, or a trailer, until it is complete)."""
        self._fed += size
        if self._in_head:
            if self._fed > self._max_header + self._slack:
                self._fail(431)
        elif self._fed > self._max_body + self._max_header + 2 * self._slack:
            self._fail(413)

    def _fail(self, status: int) -> None:
        self.error = status
        self.in_message = False
        self.wants_continue = False
        self.changed = True

    def _end_at_upgrade(self) -> None:
        """llhttp stops after an Upgrade/CONNECT request: serve it, then close."""
        if self.ready:
            last = self.ready.pop()
            self.ready.append(
                ParsedRequest(request=last.request, keep_alive=False, http_10=last.http_10)
            )
        self._done = True

    # -- llhttp callbacks (via httptools) --------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset_message()
        self._in_head = True
        self.in_message = True
        self.changed = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # a chunked body's trailer: h11 dropped those too
        self._head_size += len(name) + len(value) + 4
        name = name.lower()
        if value and (value[-1] == 32 or value[-1] == 9):  # llhttp keeps trailing OWS
            value = value.rstrip(b" \t")
        self._headers.append((name, value))
        if name not in _NOTED:  # most headers: one set lookup, not three comparisons
            return
        if name == b"content-length":
            self._length = int(value)  # llhttp validated it
        elif name == b"host":
            self._hosts += 1
        elif value.lower() == b"100-continue":  # expect
            self._expect = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._fed = 0
        if self._head_size > self._max_header:
            raise _LimitExceeded(431)
        if self._length > self._max_body:
            raise _LimitExceeded(413)
        parser = self._parser
        version = parser.get_http_version()
        if self._hosts > 1 or (self._hosts == 0 and version == "1.1"):
            raise _LimitExceeded(400)  # as h11: HTTP/1.1 needs exactly one Host
        path, _, query = self._url.partition(b"?")
        self._request = Request(
            method=parser.get_method().decode("ascii"),
            path=path.decode("latin-1"),
            query=query.decode("latin-1"),
            headers=self._headers,
            client=self._client,
        )
        if self._expect and version == "1.1" and self._length != 0:
            self.wants_continue = True
            self.changed = True

    def on_body(self, body: bytes) -> None:
        self.wants_continue = False
        self._body_size += len(body)
        if self._body_size > self._max_body:
            raise _LimitExceeded(413)
        self._body.append(body)

    def on_message_complete(self) -> None:
        request = self._request
        assert request is not None
        if self._body:
            request.body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        parser = self._parser
        http_10 = parser.get_http_version() != "1.1"
        # HTTP/1.0 always closes, as with h11 (no keep-alive extension for 1.0 clients).
        keep_alive = not http_10 and parser.should_keep_alive() and not parser.should_upgrade()
        self.ready.append(ParsedRequest(request=request, keep_alive=keep_alive, http_10=http_10))
        self._done = not keep_alive
        self.in_message = False
        self.wants_continue = False
        self.changed = True


# -- responses -----------------------------------------------------------------------------

Framing = Literal["length", "chunked", "until_close", "none"]


class ResponseHead(NamedTuple):
    """What `response_head` decided (a tuple, not a dataclass: built once per response)."""

    data: bytes  # status line and headers, through the blank line
    framing: Framing  # how the body goes out: as is, chunked, raw until close, or not at all
    close: bool  # the connection must close after this response


_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    """`HTTP/1.1 <status> <reason>\\r\\n`, with the standard reason phrase when there is one."""
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {reason}\r\n".encode()
    return line


# Header names already checked: the same dozen names come with every response.
_GOOD_NAMES: set[bytes] = set()
_GOOD_NAMES_MAX = 4096
_FORBIDDEN = b"\x00\n\r\x0b\x0c"  # NUL and the whitespace other than space and tab


def _good_name(name: bytes) -> bool:
    if type(name) is not bytes or _TOKEN(name) is None:
        return False
    if len(_GOOD_NAMES) < _GOOD_NAMES_MAX:
        _GOOD_NAMES.add(name)
    return True


def good_field_value(value: bytes) -> bool:
    """h11's field-value grammar, `(?:[^\\x00\\s]+(?:[ \\t]+[^\\x00\\s]+)*)?`, without a
    regex (twice as fast; it runs per header per response): no NUL, CR, LF, VT or FF, and
    no space or tab at either end: both C calls give `value` back unchanged only then."""
    return value.strip(b" \t").translate(None, _FORBIDDEN) == value


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (never call it with b"": that is the last chunk)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def _has_close(value: bytes) -> bool:
    return any(token.strip() == b"close" for token in value.lower().split(b","))


def response_head(
    status: int,
    headers: Headers,
    *,
    body_length: int | None,
    head_only: bool,
    http_10: bool,
    close: bool,
) -> ResponseHead:
    """The head of a response and how to frame its body.

    `body_length` is the length of a whole body, None for a stream (chunked, or raw until
    close for HTTP/1.0 clients). The handler's transfer-encoding always goes (framing is
    ours); its content-length goes for streams and must match a whole body (except for HEAD
    and bodiless statuses, which send none). `close` (the server's wish) or the handler's
    own `connection: close` give exactly one `connection: close` header."""
    if type(status) is not int or not 200 <= status <= 999:
        raise InvalidResponse(f"invalid status {status!r}")
    copied = _copy_headers(status, headers, stream=body_length is None)
    lines = copied.lines
    close = close or copied.close
    framing: Framing
    if body_length is None:
        if status in (204, 304):
            framing = "none"
        elif http_10:
            framing = "none" if head_only else "until_close"
            close = True
        else:
            lines.append(b"transfer-encoding: chunked\r\n")
            framing = "none" if head_only else "chunked"
    else:
        no_body = head_only or status in (204, 304)
        framing = "none" if no_body else "length"
        if copied.length is None:
            if status not in (204, 304):
                lines.append(b"content-length: %d\r\n" % body_length)
        elif not no_body and int(copied.length) != body_length:
            raise InvalidResponse(f"content-length {copied.length!r} but {body_length} bytes")
    lines.extend((CLOSE_HEADER,) if close else copied.connection)
    lines.append(b"\r\n")
    return ResponseHead(b"".join(lines), framing, close)


class _Copied(NamedTuple):
    lines: list[bytes]  # status line and the headers we keep, encoded
    length: bytes | None  # the handler's content-length (whole bodies only)
    connection: list[bytes]  # the handler's connection headers, encoded, held back
    close: bool  # one of them says close


# Response headers `_copy_headers` treats apart (transfer-encoding: dropped, framing is ours).
_SPECIAL = frozenset((b"content-length", b"transfer-encoding", b"connection", b"server"))


def _copy_headers(status: int, headers: Headers, *, stream: bool) -> _Copied:
    """Validate and encode the handler's headers, minus those whose values are ours."""
    lines = [status_line(status)]
    has_server = close = False
    length: bytes | None = None
    connection: list[bytes] = []
    for name, value in headers:
        # Checked here, not in a helper: no call per header of every response.
        if name not in _GOOD_NAMES and not _good_name(name):
            raise InvalidResponse(f"invalid header {name!r}")
        if type(value) is not bytes or value.strip(b" \t").translate(None, _FORBIDDEN) != value:
            raise InvalidResponse(f"invalid header {name!r}")
        lower = name.lower()
        if lower not in _SPECIAL:  # most headers: one set lookup, not four comparisons
            lines.append(name + b": " + value + b"\r\n")
        elif lower == b"content-length":
            if stream:
                continue
            if _DIGITS(value) is None or (length is not None and value != length):
                raise InvalidResponse(f"invalid content-length {value!r}")
            if length is None:  # the same value twice: send it once
                length = value
                lines.append(name + b": " + value + b"\r\n")
        elif lower == b"connection":
            close = close or _has_close(value)
            connection.append(name + b": " + value + b"\r\n")
        elif lower == b"server":
            has_server = True
            lines.append(name + b": " + value + b"\r\n")
    if not has_server:
        lines.append(SERVER_HEADER)
    return _Copied(lines, length, connection, close)
