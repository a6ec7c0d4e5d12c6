"""The HTTP/1.1 server: httptools (llhttp) on trio. The proxy's front door and the test
suite's fake upstreams. The wire format (parsing, framing, validation) is core/http1.py.

What it owns and its rules:
- `serve(handler, ...)` binds, reports `ServerInfo` through `task_status.started`, and serves
  until cancelled (or until `drain` is set and in-flight requests are done).
- A request is read whole (body as bytes) before the handler runs; limits answer 413 (body),
  431 (headers), 400 (malformed), 408 (request started but too slow; an idle keep-alive
  connection is just closed). `Expect: 100-continue` gets `100 Continue` before the body.
- One connection's life (reading, the handler, writing, disconnects) is
  core/server_conn.py. Its errors are logged here (logger "ccx.server"); nothing a client
  does (reset, garbage) kills the server or other connections.
- Receive timeouts are enforced by one sweeper task per server, a little late (at most a
  quarter of the timeout, or SWEEP_MAX_TICK): no trio deadline moves per request.
- Cheap: no task or cancel scope per request, llhttp parsing, one write for a whole
  non-stream response and one per stream chunk (straight to the socket on POSIX; trio
  only when the kernel buffer is full), no buffering.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from core.http import Request, Response
from core.server_conn import DISCONNECT_ERRORS, Connection

__all__ = ["SWEEP_MAX_TICK", "Handler", "ServerInfo", "ServerLimits", "serve"]

log = logging.getLogger("ccx.server")

Handler = Callable[[Request], Awaitable[Response]]

# Receive timeouts are noticed at most this late (or a quarter of the shorter one).
SWEEP_MAX_TICK = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerLimits:
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 64 * 1024 * 1024
    keepalive_timeout: float = 75.0  # idle wait for the next request on a kept-alive connection
    request_timeout: float = 60.0  # to receive a whole request (headers + body) once it started


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerInfo:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class _Server:
    """Shared state of one `serve` call: the handler, the limits and the live connections."""

    def __init__(self, handler: Handler, limits: ServerLimits) -> None:
        self.handler = handler
        self.limits = limits
        self.connections: set[Connection] = set()
        self.draining = False
        self.all_closed = trio.Event()

    async def sweep(self) -> None:
        """Enforce the connections' receive timeouts, a little late (at most `tick`)."""
        limits = self.limits
        tick = min(SWEEP_MAX_TICK, min(limits.keepalive_timeout, limits.request_timeout) / 4)
        while True:
            await trio.sleep(tick)
            now = trio.current_time()
            for conn in list(self.connections):
                conn.expire(now)

    def begin_drain(self) -> None:
        self.draining = True
        for conn in list(self.connections):
            conn.close_if_idle()
        if not self.connections:
            self.all_closed.set()

    async def serve_connection(self, stream: trio.SocketStream) -> None:
        conn = Connection(self, stream)
        self.connections.add(conn)
        try:
            await conn.run()
        except BaseException as exc:
            _log_connection_error(conn.client, exc)
        finally:
            self.connections.discard(conn)
            if self.draining and not self.connections:
                self.all_closed.set()


def _log_connection_error(client: str, exc: BaseException) -> None:
    """Log (never propagate) a connection's own errors; re-raise cancellation and the like."""
    if isinstance(exc, BaseExceptionGroup):
        errors, others = exc.split(Exception)
        if errors is not None:
            for error in errors.exceptions:
                _log_connection_error(client, error)
        if others is not None:
            raise others
        return
    if not isinstance(exc, Exception):
        raise exc
    if isinstance(exc, DISCONNECT_ERRORS):
        log.debug("client %s went away: %r", client, exc)
    else:
        log.error("connection from %s failed", client, exc_info=exc)


async def serve(
    handler: Handler,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    limits: ServerLimits = ServerLimits(),
    drain: trio.Event | None = None,
    drain_timeout: float = 10.0,
    task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `handler` on host:port (0 = ephemeral) until cancelled.

    When `drain` is set: stop accepting, close idle connections, let in-flight requests
    finish (their responses carry `Connection: close`) for up to `drain_timeout` seconds,
    cancel what is left, and return.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    sockname = listeners[0].socket.getsockname()
    server = _Server(handler, limits)
    async with trio.open_nursery() as connections:
        accepting = trio.CancelScope()

        async def accept() -> None:
            with accepting:
                await trio.serve_listeners(
                    server.serve_connection, listeners, handler_nursery=connections
                )

        connections.start_soon(accept)
        connections.start_soon(server.sweep)
        task_status.started(ServerInfo(host=sockname[0], port=sockname[1]))
        if drain is None:
            return  # the nursery runs until cancelled
        await drain.wait()
        accepting.cancel()  # serve_listeners closes the listeners on its way out
        server.begin_drain()
        with trio.move_on_after(drain_timeout):
            await server.all_closed.wait()
        connections.cancel_scope.cancel()
