"""An upstream answer's body, and the one mapping of foreign exceptions to core.errors.

Rules:
- `UpstreamResponse` owns its connection until the body was read to the end (then the
  connection goes back to its client's pool) or it is aborted or closed (then it is
  discarded). Once let go it never touches the connection again: a late finaliser of an
  abandoned iterator cannot reach a connection that meanwhile serves someone else.
- `to_upstream_error` is the one place foreign exceptions become ours. Messages name the
  origin only, never headers, keys or bodies. `trio.Cancelled` always passes through.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Literal, Protocol

import trio

from core.errors import UpstreamConnectError, UpstreamError, UpstreamProtocolError, UpstreamTimeout
from core.upstream_conn import EXCHANGE_ERRORS, Connection, Headers, Origin

__all__ = ["ConnectionOwner", "Phase", "UpstreamResponse", "to_upstream_error"]

Phase = Literal["connect", "exchange"]

# Quoted spans in library messages may echo header values; never let them into our errors.
_QUOTED = re.compile(r"""[bB]?(['"]).*?\1""")


class ConnectionOwner(Protocol):
    """The pool a response's connection goes back to (core.upstream.UpstreamClient)."""

    def release(self, conn: Connection) -> None: ...  # pooled if the exchange ended cleanly
    def discard(self, conn: Connection) -> None: ...  # closed


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
    # Parser and library messages: scrub anything quoted, it may echo a header value.
    text = (exc.strerror or str(exc)) if isinstance(exc, OSError) else _QUOTED.sub("…", str(exc))
    name = type(exc).__name__
    return f"{name}: {text[:160]}" if text else name


class UpstreamResponse:
    """Status and headers of an upstream answer; the body streams from the connection."""

    __slots__ = ("_client", "_conn", "headers", "status")

    def __init__(self, client: ConnectionOwner, conn: Connection) -> None:
        self.status: int = conn.status
        self.headers: Headers = conn.headers  # a fresh list per cycle: ours to keep
        self._client = client
        # None once let go: a late finaliser of an abandoned iterator can then never touch
        # a connection that meanwhile went back to the pool and serves someone else.
        self._conn: Connection | None = conn

    def iter_raw(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive (de-chunked, not decompressed): one chunk per read."""
        return _RawBody(self, self._conn)

    async def read(self) -> bytes:
        conn = self._conn
        if conn is not None and conn.complete:  # the whole body came with the head
            body = conn.take_body()
            self._let_go(conn, keep=True)
            return body
        chunks = [chunk async for chunk in self.iter_raw()]
        return b"".join(chunks)

    @property
    def complete(self) -> bool:
        """The whole body has arrived (`read` will not wait)."""
        return self._conn is not None and self._conn.complete

    @property
    def is_open(self) -> bool:
        """Still holding its connection (the body was not read to the end)."""
        return self._conn is not None

    def abort(self) -> None:
        """Close the connection now, from any task: a read pending elsewhere wakes with an
        error. Used by the stream watchdog; never returns the connection to the pool."""
        if self._conn is not None:
            self._let_go(self._conn, keep=False)

    async def aclose(self) -> None:
        """Idempotent: pool the connection if the body was read to the end, else close it."""
        if self._conn is not None:
            self._let_go(self._conn, keep=True)
        await trio.lowlevel.checkpoint()

    def _let_go(self, conn: Connection, *, keep: bool) -> None:
        if self._conn is not conn:
            return
        self._conn = None
        if keep:
            self._client.release(conn)  # pools it only if the exchange ended cleanly
        else:
            self._client.discard(conn)


class _RawBody:
    """`UpstreamResponse.iter_raw`: a class, not an async generator, because trio's asyncgen
    hooks register every generator on its first step, which is on a stream's first-event
    path. The connection goes back to the pool at the body's end, is discarded on an error
    or cancellation; an iterator left unfinished leaves it to the response (abort/aclose).
    """

    __slots__ = ("_conn", "_resp")

    def __init__(self, resp: UpstreamResponse, conn: Connection | None) -> None:
        self._resp = resp
        self._conn = conn  # None once ended (or never had one): iteration is over

    def __aiter__(self) -> _RawBody:
        return self

    async def aclose(self) -> None:
        """Breaking off the iteration: the rest of the body is unread, the connection goes."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._resp._let_go(conn, keep=False)

    async def __anext__(self) -> bytes:
        conn = self._conn
        if conn is None:
            raise StopAsyncIteration
        while True:
            chunk = conn.take_body()
            if conn.complete:
                self._conn = None
                self._resp._let_go(conn, keep=True)  # done: back to the pool at once
                if chunk:
                    return chunk
                raise StopAsyncIteration
            if chunk:
                return chunk
            try:
                await conn.read_body()
            except EXCHANGE_ERRORS as exc:
                self._conn = None
                self._resp._let_go(conn, keep=False)
                raise to_upstream_error(exc, conn.origin, phase="exchange") from exc
            except BaseException:
                self._conn = None
                self._resp._let_go(conn, keep=False)  # cancelled mid-body
                raise
