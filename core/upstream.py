"""The upstream HTTP/1.1 client: httptools-parsed connections over trio, under our own pool.

Owns: opening connections (TCP, TLS), sending one request, relaying the response body one
network read at a time, keep-alive pooling, and mapping every foreign exception to
core.errors. The wire format (request bytes, response parsing) is core/upstream_conn.py.

Rules:
- Why not httpx/httpcore: bench/client_bench.py measured CPU per small request at about
  0.14x of httpx for this client (0.27x when it parsed with h11; bare httpcore 0.5-0.6x),
  and per relayed chunk about 2 us above a raw-socket floor (27 us with h11); httpcore's
  pool also degrades with many idle connections (STACK-NOTES, encode/httpcore#1035). The
  pool here is per origin: an idle LIFO list capped at `max_idle_per_origin`; checkout and
  return are O(1), never a scan. The cap is sized for a busy workstation (64 agents in
  flight at once must not churn connections: a 16-cap opened one for every third request
  at 64 clients); connections idle longer than `idle_expiry` are closed from the bottom
  of the list (the coldest) whenever one returns.
- A connection is either idle (in the pool) or owned by exactly one in-flight request.
  Cancellation or any error while it is owned closes it; only a response whose body was read
  to the end on a keep-alive connection returns it to the pool. Accounting is synchronous,
  so a cancel at any await leaves `stats()` exact.
- A reused connection that fails before any response byte (the server dropped it while it
  sat idle) is retried once on a fresh connection.
- One function, `to_upstream_error` (core/upstream_response.py, with the response and its
  body iterator), maps foreign exceptions. Messages name the origin only, never headers,
  keys or bodies. `trio.Cancelled` always passes through untouched.
- Bodies are relayed as received: de-chunked, never decompressed, no buffering beyond one
  network read, and one chunk per read (not per HTTP chunk: each chunk costs the relay a
  step and a client write).
"""

from __future__ import annotations

import ssl
import string
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

import trio

from core.errors import UpstreamConnectError, UpstreamProtocolError
from core.upstream_conn import (
    EXCHANGE_ERRORS,
    Connection,
    Headers,
    Origin,
    PoolState,
    encode_head,
)
from core.upstream_response import Phase, UpstreamResponse, to_upstream_error

__all__ = [
    "Headers",
    "Origin",
    "Phase",
    "UpstreamClient",
    "UpstreamResponse",
    "default_ssl_context",
    "to_upstream_error",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
_TARGETS_MAX = 1024
# A pooled connection idle for less than this is reused without checking it is alive.
TRUST_IDLE_FOR = 1.0
# ... and while connecting: also our deadline and the codec errors of a bad host name.
_CONNECT_ERRORS: tuple[type[Exception], ...] = (*EXCHANGE_ERRORS, trio.TooSlowError, ValueError)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Target:
    origin: Origin
    host_header: bytes
    path: bytes


class _StaleConnection(Exception):
    """A reused connection died before any response byte: retry on a fresh one."""


class UpstreamClient:
    def __init__(
        self,
        *,
        max_idle_per_origin: int = 128,
        idle_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_idle = max_idle_per_origin
        self._idle_expiry = idle_expiry
        self._ssl_context = ssl_context
        self._idle: dict[Origin, list[Connection]] = {}
        self._active = 0
        self._opened = 0
        self._origins: dict[tuple[str, str], tuple[Origin, bytes]] = {}
        self._targets: dict[str, _Target] = {}  # parsing a URL costs more than the request
        # The clock for idle times, read twice per request; Engine.run binds its run's clock.
        self.now: Callable[[], float] = trio.current_time

    # -- public ------------------------------------------------------------------------------

    async def send(
        self,
        method: str,
        url: str,
        headers: Headers,
        body: bytes,
        *,
        connect_timeout: float,
        on_exchange: Callable[[Callable[[], None]], None] | None = None,
        on_sent: Callable[[], None] | None = None,
    ) -> UpstreamResponse:
        """Send one request; return once the response status and headers arrived.

        `on_exchange(abort)` is told, for each connection the request goes out on, how to
        abort it from another task (a deadline keeper): the pending read then fails with
        an UpstreamError, and the request is not retried. `on_sent()` runs once the request
        went out, before waiting for the answer: work the caller can do while the upstream
        works (it may run twice if a stale pooled connection makes us send again)."""
        target = self._target(url)
        length = len(body) if body or method in _BODY_METHODS else None
        head = encode_head(method.encode("ascii"), target.path, target.host_header, headers, length)
        if head is None:
            # Raised outside any handler: no cause or context can carry a header value.
            raise UpstreamProtocolError(f"{target.origin}: invalid request headers")
        conn = self._checkout(target.origin)
        if conn is not None:
            if on_exchange is not None:
                on_exchange(conn.abort_now)
            try:
                return await self._exchange(conn, head, body, on_sent, reused=True)
            except _StaleConnection:
                pass  # already closed; one retry on a fresh connection below
        conn = await self._connect(target.origin, connect_timeout)
        if on_exchange is not None:
            on_exchange(conn.abort_now)
        return await self._exchange(conn, head, body, on_sent, reused=False)

    async def aclose(self) -> None:
        """Close idle connections. Connections owned by open responses close with them."""
        idle = [conn for conns in self._idle.values() for conn in conns]
        self._idle.clear()
        for conn in idle:
            conn.close_now()
        await trio.lowlevel.checkpoint()

    def stats(self) -> dict[str, int]:
        idle = sum(len(conns) for conns in self._idle.values())
        return {"idle": idle, "active": self._active, "opened": self._opened}

    # -- connections -------------------------------------------------------------------------

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= _TARGETS_MAX:
                self._targets.clear()  # model names in paths: bounded, never a leak
            target = self._targets[url] = self._parse_target(url)
        return target

    def _parse_target(self, url: str) -> _Target:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _parse_origin(parts)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        # e.g. a model name with non-ASCII letters or a space in a path: UTF-8, percent-encoded
        if not path.isascii() or " " in path:
            path = quote(path, safe=string.punctuation)
        return _Target(origin=origin[0], host_header=origin[1], path=path.encode("ascii"))

    def _checkout(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        checked_before = self.now() - TRUST_IDLE_FOR
        while idle:
            conn = idle.pop()  # LIFO: the warmest connection first
            # One back in the pool a moment ago is taken on trust (the poll is a syscall on
            # every request's path). Had the server closed it since, our read sees EOF
            # before any byte, and the request goes again on a fresh connection: the server
            # never saw it (see _StaleConnection).
            if conn.idle_since < checked_before and conn.dead_while_idle():
                conn.close_now()
                continue
            conn.state = PoolState.ACTIVE
            self._active += 1
            return conn
        return None

    async def _connect(self, origin: Origin, timeout: float) -> Connection:
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
        return Connection(stream, origin)

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

    def release(self, conn: Connection) -> None:
        """Back to the pool if the exchange ended cleanly, else closed. Idempotent, sync."""
        if conn.state is not PoolState.ACTIVE:
            return
        self._active -= 1
        if not conn.reusable():
            conn.close_now()
            return
        conn.state = PoolState.IDLE
        conn.idle_since = now = self.now()
        idle = self._idle.setdefault(conn.origin, [])
        idle.append(conn)
        if len(idle) > self._max_idle:
            idle.pop(0).close_now()  # the coldest: likeliest to hit the server's idle timeout
        expired = now - self._idle_expiry
        while idle[0].idle_since < expired:
            idle.pop(0).close_now()  # never the one just returned: it is at the top

    def discard(self, conn: Connection) -> None:
        if conn.state is PoolState.ACTIVE:
            self._active -= 1
        conn.close_now()

    # -- one exchange ------------------------------------------------------------------------

    async def _exchange(
        self,
        conn: Connection,
        head: bytes,
        body: bytes,
        on_sent: Callable[[], None] | None,
        *,
        reused: bool,
    ) -> UpstreamResponse:
        try:
            conn.begin()
            await conn.send_request(head, body)
            if on_sent is not None:
                on_sent()
            await conn.read_head()
        except EXCHANGE_ERRORS as exc:
            self.discard(conn)
            if reused and not conn.received and not conn.aborted:
                raise _StaleConnection from exc
            raise to_upstream_error(exc, conn.origin, phase="exchange") from exc
        except BaseException:
            self.discard(conn)  # cancelled mid-exchange: never reuse a half-used connection
            raise
        return UpstreamResponse(self, conn)


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
