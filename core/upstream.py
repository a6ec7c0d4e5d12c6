"""The upstream HTTP/1.1 client: h11 connections over trio streams, under our own small pool.

Owns: opening connections (TCP, TLS), sending one request, relaying the response body chunk
by chunk, keep-alive pooling, and mapping every foreign exception to core.errors.

Rules:
- Why not httpx/httpcore: bench/client_bench.py measured CPU per small request at about
  0.3x of httpx for this client against 0.55-0.65x for a bare httpcore connection, and per
  relayed chunk about 0.75x against 0.95x; httpcore's pool also degrades with many idle
  connections (STACK-NOTES, encode/httpcore#1035). The pool here is per origin: an idle
  LIFO list capped at `max_idle_per_origin`; checkout and return are O(1), never a scan.
- A connection is either idle (in the pool) or owned by exactly one in-flight request.
  Cancellation or any error while it is owned closes it; only a response whose body was read
  to the end on a keep-alive connection returns it to the pool. Accounting is synchronous,
  so a cancel at any await leaves `stats()` exact.
- A reused connection that fails before any response byte (the server dropped it while it
  sat idle) is retried once on a fresh connection.
- One function, `to_upstream_error`, maps foreign exceptions. Messages name the origin
  only, never headers, keys or bodies. `trio.Cancelled` always passes through untouched.
- Bodies are relayed as received: de-chunked, never decompressed, no buffering beyond one
  network read.
"""

from __future__ import annotations

import re
import select
import ssl
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum
from typing import Literal
from urllib.parse import SplitResult, quote, urlsplit

import h11
import trio

from core.errors import UpstreamConnectError, UpstreamError, UpstreamProtocolError, UpstreamTimeout

Headers = list[tuple[bytes, bytes]]
Phase = Literal["connect", "exchange"]
_Event = h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]

_READ_SIZE = 65536
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Set by us, so dropped from the caller's headers: a second copy would be a protocol error.
_OWN_HEADERS = frozenset((b"host", b"content-length", b"transfer-encoding"))
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
# Quoted spans in library messages may echo header values; never let them into our errors.
_QUOTED = re.compile(r"""[bB]?(['"]).*?\1""")


@dataclass(frozen=True, slots=True, kw_only=True)
class Origin:
    scheme: Literal["http", "https"]
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Target:
    origin: Origin
    host_header: bytes
    path: bytes


class _State(Enum):
    IDLE = "idle"
    ACTIVE = "active"
    CLOSED = "closed"


class _StaleConnection(Exception):
    """A reused connection died before any response byte: retry on a fresh one."""


def to_upstream_error(exc: BaseException, origin: Origin | str, *, phase: Phase) -> UpstreamError:
    """The one place foreign exceptions become ours. Never called with trio.Cancelled."""
    if isinstance(exc, UpstreamError):
        return exc
    where = str(origin)
    if isinstance(exc, trio.TooSlowError):
        return UpstreamTimeout(f"{where}: connect timed out", phase="connect")
    reason = _describe(exc)
    if phase == "connect":
        return UpstreamConnectError(f"{where}: cannot connect ({reason})")
    return UpstreamProtocolError(f"{where}: broken response ({reason})")


def _describe(exc: BaseException) -> str:
    # trio wraps TLS and socket failures in BrokenResourceError; the cause says what happened.
    cause = exc.__cause__
    if isinstance(exc, trio.BrokenResourceError) and cause is not None:
        exc = cause
    if isinstance(exc, h11.ProtocolError):
        text = _QUOTED.sub("…", str(exc))
    elif isinstance(exc, OSError):
        text = exc.strerror or str(exc)
    else:
        text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text[:160]}" if text else name


# What the network, TLS and h11 raise while a request is in flight.
_EXCHANGE_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # includes ssl.SSLError and ConnectionResetError
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    h11.ProtocolError,
)
# ... and while connecting: also our deadline and the codec errors of a bad host name.
_CONNECT_ERRORS: tuple[type[Exception], ...] = (*_EXCHANGE_ERRORS, trio.TooSlowError, ValueError)


def _readable(stream: trio.abc.Stream) -> bool:
    """An idle connection that is readable got EOF (or junk): it must not be reused."""
    transport = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if not isinstance(transport, trio.SocketStream):
        return False
    fd = transport.socket.fileno()
    if fd < 0:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])


class _Conn:
    """One HTTP/1.1 connection: a trio stream plus its h11 state machine."""

    __slots__ = ("h11", "origin", "received", "state", "stream")

    def __init__(self, stream: trio.abc.Stream, origin: Origin) -> None:
        self.stream = stream
        self.origin = origin
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
        self.state = _State.ACTIVE
        self.received = False  # any response byte arrived in this request cycle

    async def next_event(self) -> _Event:
        """The next h11 event, reading from the network only when h11 needs more bytes."""
        conn = self.h11
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = bytes(await self.stream.receive_some(_READ_SIZE))
            if data:
                self.received = True
            elif conn.their_state is h11.SEND_RESPONSE:
                raise h11.RemoteProtocolError("connection closed before a response")
            conn.receive_data(data)

    def reusable(self) -> bool:
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE


class UpstreamClient:
    def __init__(
        self, *, max_idle_per_origin: int = 16, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._max_idle = max_idle_per_origin
        self._ssl_context = ssl_context
        self._idle: dict[Origin, list[_Conn]] = {}
        self._active = 0
        self._opened = 0
        self._targets: dict[tuple[str, str], tuple[Origin, bytes]] = {}

    # -- public ------------------------------------------------------------------------------

    async def send(
        self,
        method: str,
        url: str,
        headers: Headers,
        body: bytes,
        *,
        connect_timeout: float,
    ) -> UpstreamResponse:
        """Send one request; return once the response status and headers arrived."""
        target = self._target(url)
        request = _build_request(method, target, headers, body)
        conn = self._checkout(target.origin)
        if conn is not None:
            try:
                return await self._exchange(conn, request, body, reused=True)
            except _StaleConnection:
                pass  # already closed; one retry on a fresh connection below
        conn = await self._connect(target.origin, connect_timeout)
        return await self._exchange(conn, request, body, reused=False)

    async def aclose(self) -> None:
        """Close idle connections. Connections owned by open responses close with them."""
        idle = [conn for conns in self._idle.values() for conn in conns]
        self._idle.clear()
        for conn in idle:
            conn.state = _State.CLOSED
            _close_now(conn.stream)
        await trio.lowlevel.checkpoint()

    def stats(self) -> dict[str, int]:
        idle = sum(len(conns) for conns in self._idle.values())
        return {"idle": idle, "active": self._active, "opened": self._opened}

    # -- connections -------------------------------------------------------------------------

    def _target(self, url: str) -> _Target:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        cached = self._targets.get(key)
        if cached is None:
            cached = self._targets[key] = _parse_origin(parts)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        if not path.isascii():  # e.g. a model name with non-ASCII letters in a path
            path = quote(path, safe=string.punctuation)
        return _Target(origin=cached[0], host_header=cached[1], path=path.encode("ascii"))

    def _checkout(self, origin: Origin) -> _Conn | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()  # LIFO: the warmest connection first
            if _readable(conn.stream):
                conn.state = _State.CLOSED
                _close_now(conn.stream)
                continue
            conn.state = _State.ACTIVE
            conn.received = False
            self._active += 1
            return conn
        return None

    async def _connect(self, origin: Origin, timeout: float) -> _Conn:
        try:
            with trio.fail_after(timeout):
                tcp = await trio.open_tcp_stream(origin.host, origin.port)
                stream: trio.abc.Stream = tcp
                if origin.scheme == "https":
                    stream = await self._tls(tcp, origin)
        except _CONNECT_ERRORS as exc:
            raise to_upstream_error(exc, origin, phase="connect") from exc
        self._opened += 1
        self._active += 1
        return _Conn(stream, origin)

    async def _tls(
        self, tcp: trio.SocketStream, origin: Origin
    ) -> trio.SSLStream[trio.SocketStream]:
        if self._ssl_context is None:
            self._ssl_context = default_ssl_context()
        tls = trio.SSLStream(
            tcp, self._ssl_context, server_hostname=origin.host, https_compatible=True
        )
        try:
            await tls.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(tcp)
            raise
        return tls

    def _release(self, conn: _Conn) -> None:
        """Back to the pool if the exchange ended cleanly, else closed. Idempotent, sync."""
        if conn.state is not _State.ACTIVE:
            return
        self._active -= 1
        if not conn.reusable():
            conn.state = _State.CLOSED
            _close_now(conn.stream)
            return
        conn.h11.start_next_cycle()
        conn.state = _State.IDLE
        idle = self._idle.setdefault(conn.origin, [])
        idle.append(conn)
        if len(idle) > self._max_idle:
            oldest = idle.pop(0)  # the likeliest to hit the server's keep-alive timeout
            oldest.state = _State.CLOSED
            _close_now(oldest.stream)

    def _discard(self, conn: _Conn) -> None:
        if conn.state is _State.ACTIVE:
            self._active -= 1
        conn.state = _State.CLOSED
        _close_now(conn.stream)

    # -- one exchange ------------------------------------------------------------------------

    async def _exchange(
        self, conn: _Conn, request: h11.Request, body: bytes, *, reused: bool
    ) -> UpstreamResponse:
        try:
            wire = conn.h11.send(request) or b""
            if body:
                wire += conn.h11.send(h11.Data(data=body)) or b""
            wire += conn.h11.send(h11.EndOfMessage()) or b""
            await conn.stream.send_all(wire)
            event = await conn.next_event()
            while isinstance(event, h11.InformationalResponse):
                event = await conn.next_event()
            if not isinstance(event, h11.Response):
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")
        except _EXCHANGE_ERRORS as exc:
            self._discard(conn)
            if reused and not conn.received:
                raise _StaleConnection from exc
            raise to_upstream_error(exc, conn.origin, phase="exchange") from exc
        except BaseException:
            self._discard(conn)  # cancelled mid-exchange: never reuse a half-used connection
            raise
        return UpstreamResponse(self, conn, event)


class UpstreamResponse:
    """Status and headers of an upstream answer; the body streams from the connection."""

    __slots__ = ("_client", "_conn", "headers", "status")

    def __init__(self, client: UpstreamClient, conn: _Conn, event: h11.Response) -> None:
        self.status: int = event.status_code
        self.headers: Headers = list(event.headers)
        self._client = client
        # None once let go: a late finaliser of an abandoned iterator can then never touch
        # a connection that meanwhile went back to the pool and serves someone else.
        self._conn: _Conn | None = conn

    async def iter_raw(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive (de-chunked, not decompressed)."""
        conn = self._conn
        if conn is None:
            return
        try:
            event = await conn.next_event()
            while True:
                if isinstance(event, h11.EndOfMessage):
                    self._let_go(conn, keep=True)  # done: back to the pool at once
                    return
                if not isinstance(event, h11.Data):
                    raise h11.RemoteProtocolError("connection closed mid-body")
                # One chunk per network read, not per HTTP chunk: a read often brings
                # several SSE events, and each yield costs a relay step and a client write.
                parts = [event.data]
                event = conn.h11.next_event()
                while isinstance(event, h11.Data):
                    parts.append(event.data)
                    event = conn.h11.next_event()
                yield bytes(parts[0]) if len(parts) == 1 else b"".join(parts)
                if event is h11.NEED_DATA:
                    event = await conn.next_event()
        except _EXCHANGE_ERRORS as exc:
            self._let_go(conn, keep=False)
            raise to_upstream_error(exc, conn.origin, phase="exchange") from exc
        except BaseException:
            self._let_go(conn, keep=False)  # cancelled or abandoned mid-body
            raise

    async def read(self) -> bytes:
        chunks = [chunk async for chunk in self.iter_raw()]
        return b"".join(chunks)

    async def aclose(self) -> None:
        """Idempotent: pool the connection if the body was read to the end, else close it."""
        if self._conn is not None:
            self._let_go(self._conn, keep=True)
        await trio.lowlevel.checkpoint()

    def _let_go(self, conn: _Conn, *, keep: bool) -> None:
        if self._conn is not conn:
            return
        self._conn = None
        if keep:
            self._client._release(conn)  # pools it only if the exchange ended cleanly
        else:
            self._client._discard(conn)


def default_ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


def _parse_origin(parts: SplitResult) -> tuple[Origin, bytes]:
    scheme = parts.scheme
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise UpstreamConnectError(f"unsupported upstream URL scheme or host: {scheme}://")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise UpstreamConnectError(f"{scheme}://{parts.hostname}: bad port") from exc
    origin = Origin(scheme="https" if scheme == "https" else "http", host=parts.hostname, port=port)
    host_header = parts.netloc.rpartition("@")[2].encode("idna")
    return origin, host_header


def _build_request(method: str, target: _Target, headers: Headers, body: bytes) -> h11.Request:
    out: Headers = [(b"host", target.host_header)]
    out += [(name, value) for name, value in headers if name.lower() not in _OWN_HEADERS]
    if body or method in _BODY_METHODS:
        out.append((b"content-length", str(len(body)).encode("ascii")))
    try:
        return h11.Request(method=method.encode("ascii"), target=target.path, headers=out)
    except h11.LocalProtocolError:
        pass
    # Raised outside the handler so neither cause nor context carries h11's message, which
    # echoes the offending header value (maybe a key).
    raise UpstreamProtocolError(f"{target.origin}: invalid request headers")


def _close_now(stream: trio.abc.Stream) -> None:
    """Close the socket synchronously, so pool state never waits on an await."""
    transport = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if isinstance(transport, trio.SocketStream):
        transport.socket.close()
