"""The upstream client against real HTTP servers on 127.0.0.1 (h11 on trio, or raw sockets).

Each test scripts the server side of one story (streaming, cancellation, a stale keep-alive
connection, a broken body...) and checks what the client saw and that the pool is
consistent afterwards: nothing active, nothing leaked, the server saw the connection close.
The server side is h11, an HTTP implementation independent of the client's httptools, or
raw bytes where a story needs what h11 would never send.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import h11
import httptools
import pytest
import trio
from trio.testing import MockClock

from core.errors import UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout
from core.upstream import TRUST_IDLE_FOR, Origin, UpstreamClient, to_upstream_error

TIMEOUT = 5  # a deadline that turns a deadlock into a failure, never a synchronisation


class ServerConn:
    """The server side of one connection, scripted by a test's handler."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER)

    async def _event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.h11.receive_data(bytes(await self.stream.receive_some(65536)))

    async def request(self) -> tuple[h11.Request, bytes] | None:
        """The next request and its body, or None when the client closed the connection."""
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        event = await self._event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        assert isinstance(event, h11.Request), event
        body = b""
        while not isinstance(data := await self._event(), h11.EndOfMessage):
            assert isinstance(data, h11.Data)
            body += data.data
        return event, body

    async def start(
        self, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        response = h11.Response(status_code=status, headers=headers or [])
        await self.stream.send_all(self.h11.send(response) or b"")

    async def chunk(self, data: bytes) -> None:
        await self.stream.send_all(self.h11.send(h11.Data(data=data)) or b"")

    async def end(self) -> None:
        await self.stream.send_all(self.h11.send(h11.EndOfMessage()) or b"")

    async def respond(self, body: bytes, status: int = 200) -> None:
        await self.start(status, [(b"content-length", b"%d" % len(body))])
        await self.chunk(body)
        await self.end()

    async def wait_eof(self) -> None:
        """Return once the client closed its side (reading and dropping anything else)."""
        try:
            while await self.stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass  # a reset is a close too


Handler = Callable[[ServerConn], Awaitable[None]]


class Server:
    """A loopback HTTP server running `handler` once per accepted connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.accepted = 0
        self.closed = 0  # connections whose handler finished
        self.port = 0
        self.scheme = "http"

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    async def serve(self, stream: trio.abc.Stream) -> None:
        self.accepted += 1
        try:
            await self.handler(ServerConn(stream))
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            pass  # the client went away: that is what several tests do on purpose
        finally:
            self.closed += 1
            await trio.aclose_forcefully(stream)


async def start_server(
    nursery: trio.Nursery, handler: Handler, *, tls: ssl.SSLContext | None = None
) -> Server:
    server = Server(handler)
    if tls is None:
        listeners = await nursery.start(partial(trio.serve_tcp, host="127.0.0.1"), server.serve, 0)
    else:
        serve = partial(trio.serve_ssl_over_tcp, host="127.0.0.1")
        listeners = await nursery.start(serve, server.serve, 0, tls)
        server.scheme = "https"
    sock = listeners[0].socket if tls is None else listeners[0].transport_listener.socket
    server.port = sock.getsockname()[1]
    return server


async def echo(conn: ServerConn) -> None:
    """Answers each request with `METHOD target host=... length=... body=...`."""
    while (got := await conn.request()) is not None:
        request, body = got
        headers = dict(request.headers)
        text = b"%s %s host=%s length=%s x=%s body=%s" % (
            request.method,
            request.target,
            headers.get(b"host", b"-"),
            headers.get(b"content-length", b"-"),
            headers.get(b"x-test", b"-"),
            body,
        )
        await conn.respond(text)


def assert_pool_clean(client: UpstreamClient, *, idle: int) -> None:
    stats = client.stats()
    assert stats["active"] == 0, stats
    assert stats["idle"] == idle, stats


# -- round trips and reuse ---------------------------------------------------------------------


async def test_get_and_post_round_trip(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, echo)
    client = UpstreamClient()

    got = await client.send("GET", server.url("/v1/models?x=1"), [], b"", connect_timeout=TIMEOUT)
    assert got.status == 200
    assert (b"content-length", b"%d" % len(await got.read())) in got.headers
    # Caller-supplied Host and Content-Length are replaced, everything else is sent as given.
    headers = [(b"Host", b"evil"), (b"content-length", b"999"), (b"X-Test", b"yes")]
    post = await client.send("POST", server.url("/v1/messages"), headers, b"{}", connect_timeout=1)
    body = await post.read()
    await post.aclose()

    port = b"%d" % server.port
    assert body == b"POST /v1/messages host=127.0.0.1:" + port + b" length=2 x=yes body={}"
    assert all(name == name.lower() for name, _ in post.headers)
    get = await client.send("GET", server.url("/v1/models?x=1"), [], b"", connect_timeout=1)
    assert await get.read() == b"GET /v1/models?x=1 host=127.0.0.1:" + port + b" length=- x=- body="
    # A non-ASCII path is percent-encoded (UTF-8); ASCII is sent exactly as given.
    get = await client.send("GET", server.url("/v1/modèle:run?a=%20"), [], b"", connect_timeout=1)
    assert (await get.read()).startswith(b"GET /v1/mod%C3%A8le:run?a=%20 ")
    get = await client.send("GET", server.url("/v1/my model:run"), [], b"", connect_timeout=1)
    assert (await get.read()).startswith(b"GET /v1/my%20model:run ")
    assert_pool_clean(client, idle=1)
    await client.aclose()
    assert_pool_clean(client, idle=0)


async def test_sequential_requests_reuse_one_connection(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, echo)
    client = UpstreamClient()
    for i in range(5):
        response = await client.send("POST", server.url(), [], b"%d" % i, connect_timeout=1)
        assert (await response.read()).endswith(b"body=%d" % i)
        await response.aclose()
        await response.aclose()  # idempotent: must not pool the connection twice
    assert client.stats() == {"idle": 1, "active": 0, "opened": 1}
    assert server.accepted == 1


# -- streaming and cancellation ----------------------------------------------------------------


async def test_stream_chunks_arrive_one_by_one(nursery: trio.Nursery) -> None:
    first_seen = trio.Event()

    async def two_chunks(conn: ServerConn) -> None:
        while await conn.request() is not None:
            await conn.start(200, [(b"content-type", b"text/event-stream")])
            await conn.chunk(b"data: one\n\n")
            await first_seen.wait()  # chunk 2 exists only after the client relayed chunk 1
            await conn.chunk(b"data: two\n\n")
            await conn.end()

    server = await start_server(nursery, two_chunks)
    client = UpstreamClient()
    seen = []
    with trio.fail_after(TIMEOUT):
        response = await client.send("POST", server.url(), [], b"{}", connect_timeout=1)
        assert (b"transfer-encoding", b"chunked") in response.headers
        async for chunk in response.iter_raw():
            seen.append(chunk)  # de-chunked: the SSE bytes only
            first_seen.set()
    assert seen == [b"data: one\n\n", b"data: two\n\n"]
    # Read to the end: the connection went back to the pool without waiting for aclose().
    assert_pool_clean(client, idle=1)
    await response.aclose()
    assert client.stats() == {"idle": 1, "active": 0, "opened": 1}


async def test_http_chunks_that_arrive_in_one_read_are_relayed_as_one(
    nursery: trio.Nursery,
) -> None:
    first_seen = trio.Event()

    async def burst(conn: ServerConn) -> None:
        await conn.request()
        await conn.start(200, [(b"content-type", b"text/event-stream")])
        frames = [conn.h11.send(h11.Data(data=b"data: %d\n\n" % i)) or b"" for i in range(3)]
        await conn.stream.send_all(b"".join(frames))  # one write: one read on loopback
        await first_seen.wait()
        await conn.end()

    server = await start_server(nursery, burst)
    client = UpstreamClient()
    seen = []
    with trio.fail_after(TIMEOUT):
        response = await client.send("POST", server.url(), [], b"{}", connect_timeout=1)
        async for chunk in response.iter_raw():
            seen.append(chunk)
            first_seen.set()
    # Each chunk costs the relay a step and a client write: three events, one chunk.
    assert seen == [b"data: 0\n\ndata: 1\n\ndata: 2\n\n"]
    assert client.stats() == {"idle": 1, "active": 0, "opened": 1}


async def test_cancel_mid_stream_closes_that_connection(nursery: trio.Nursery) -> None:
    server_saw_eof = trio.Event()

    async def endless(conn: ServerConn) -> None:
        await conn.request()
        await conn.start(200, [(b"content-type", b"text/event-stream")])
        await conn.chunk(b"data: one\n\n")
        await conn.wait_eof()
        server_saw_eof.set()

    server = await start_server(nursery, endless)
    client = UpstreamClient()
    response = await client.send("POST", server.url(), [], b"{}", connect_timeout=1)
    with trio.CancelScope() as downstream:
        try:
            async for chunk in response.iter_raw():
                assert chunk == b"data: one\n\n"
                downstream.cancel()  # the downstream client went away
        finally:
            await response.aclose()
    assert downstream.cancelled_caught
    assert_pool_clean(client, idle=0)
    # The close reaches the upstream server at once: no waiting for a timeout.
    cancelled_at = trio.current_time()
    with trio.fail_after(TIMEOUT):
        await server_saw_eof.wait()
    assert trio.current_time() - cancelled_at < 0.5
    assert client.stats()["opened"] == 1


async def test_cancel_while_waiting_for_headers_closes_and_next_request_uses_new_connection(
    nursery: trio.Nursery,
) -> None:
    got_request = trio.Event()
    server_saw_eof = trio.Event()

    async def slow_then_echo(conn: ServerConn) -> None:
        if server.accepted == 1:
            await conn.request()
            got_request.set()
            await conn.wait_eof()  # never answers: the proxy's first-byte deadline fires
            server_saw_eof.set()
        else:
            await echo(conn)

    server = await start_server(nursery, slow_then_echo)
    client = UpstreamClient()
    async with trio.open_nursery() as inner:
        first_byte_deadline = trio.CancelScope()

        async def attempt() -> None:
            with first_byte_deadline:
                await client.send("POST", server.url(), [], b"{}", connect_timeout=1)
                pytest.fail("the server never answers")

        inner.start_soon(attempt)
        with trio.fail_after(TIMEOUT):
            await got_request.wait()
            first_byte_deadline.cancel()
            await server_saw_eof.wait()
    assert first_byte_deadline.cancelled_caught
    assert client.stats() == {"idle": 0, "active": 0, "opened": 1}
    response = await client.send("POST", server.url(), [], b"ok", connect_timeout=1)
    assert (await response.read()).endswith(b"body=ok")
    assert client.stats() == {"idle": 1, "active": 0, "opened": 2}


async def test_aborting_a_reused_connection_fails_the_request_without_a_retry(
    nursery: trio.Nursery,
) -> None:
    # A deadline keeper aborts the exchange from another task (core.watchdog): on a pooled
    # connection that must not look like a stale one, which would be sent again.
    second_request = trio.Event()

    async def answer_once_then_hang(conn: ServerConn) -> None:
        await conn.request() or pytest.fail("no request")
        await conn.respond(b"first")
        await conn.request()
        second_request.set()
        await conn.wait_eof()

    server = await start_server(nursery, answer_once_then_hang)
    client = UpstreamClient()
    first = await client.send("POST", server.url(), [], b"a", connect_timeout=1)
    await first.read()
    aborts: list[Callable[[], None]] = []
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as inner:

            async def abort_when_sent() -> None:
                await second_request.wait()
                aborts[-1]()

            inner.start_soon(abort_when_sent)
            with pytest.raises(UpstreamProtocolError):
                await client.send(
                    "POST", server.url(), [], b"b", connect_timeout=1, on_exchange=aborts.append
                )
    assert len(aborts) == 1  # one connection: the pooled one, never a retry
    assert client.stats() == {"idle": 0, "active": 0, "opened": 1}
    assert server.accepted == 1


async def test_on_sent_runs_after_the_request_went_out_and_before_the_answer(
    nursery: trio.Nursery,
) -> None:
    sent = trio.Event()

    async def answer_after_on_sent(conn: ServerConn) -> None:
        while (got := await conn.request()) is not None:
            await sent.wait()  # the server answers only once the client said it had sent
            await conn.respond(b"echo " + got[1])

    server = await start_server(nursery, answer_after_on_sent)
    client = UpstreamClient()
    with trio.fail_after(TIMEOUT):
        response = await client.send(
            "POST", server.url(), [], b"x", connect_timeout=1, on_sent=sent.set
        )
    assert await response.read() == b"echo x"


async def test_breaking_off_iteration_closes_the_connection(nursery: trio.Nursery) -> None:
    async def long_body(conn: ServerConn) -> None:
        await conn.request()
        await conn.start(200, [(b"content-length", b"6")])
        await conn.chunk(b"abc")
        await conn.wait_eof()

    server = await start_server(nursery, long_body)
    client = UpstreamClient()
    response = await client.send("GET", server.url(), [], b"", connect_timeout=1)
    chunks = response.iter_raw()
    assert await chunks.__anext__() == b"abc"
    await chunks.aclose()  # type: ignore[attr-defined]
    await response.aclose()
    assert client.stats() == {"idle": 0, "active": 0, "opened": 1}


# -- response framing and keep-alive ----------------------------------------------------------


async def test_interim_responses_are_skipped_and_the_connection_kept(nursery: trio.Nursery) -> None:
    async def hints_then_echo(conn: ServerConn) -> None:
        while (got := await conn.request()) is not None:
            for status, headers in ((100, []), (103, [(b"link", b"</style.css>")])):
                interim = h11.InformationalResponse(status_code=status, headers=headers)
                await conn.stream.send_all(conn.h11.send(interim) or b"")
            await conn.respond(b"final " + got[1])

    server = await start_server(nursery, hints_then_echo)
    client = UpstreamClient()
    for body in (b"a", b"b"):
        response = await client.send("POST", server.url(), [], body, connect_timeout=1)
        assert response.status == 200
        assert [name for name, _ in response.headers] == [b"content-length"]  # no link
        assert await response.read() == b"final " + body
    assert client.stats() == {"idle": 1, "active": 0, "opened": 1}


async def test_a_body_without_framing_ends_at_close_and_the_connection_is_not_kept(
    nursery: trio.Nursery,
) -> None:
    async def until_close(conn: ServerConn) -> None:
        await conn.request()
        await conn.stream.send_all(b"HTTP/1.1 200 OK\r\nX-Mixed-Case:   padded  \r\n\r\npart 1, ")
        await conn.stream.send_all(b"part 2")
        # and the handler returns: the server closes, which ends the body

    server = await start_server(nursery, until_close)
    client = UpstreamClient()
    for _ in range(2):
        response = await client.send("GET", server.url(), [], b"", connect_timeout=1)
        # Names lowercase, values without surrounding whitespace, as h11 gave them before.
        assert response.headers == [(b"x-mixed-case", b"padded")]
        assert await response.read() == b"part 1, part 2"
        assert_pool_clean(client, idle=0)
    assert client.stats()["opened"] == server.accepted == 2


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokJUNK",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n",
    ],
    ids=["connection-close", "http-1.0", "junk-after", "second-response"],
)
async def test_answers_that_forbid_reuse_are_read_whole_and_the_connection_closed(
    nursery: trio.Nursery, answer: bytes
) -> None:
    server_saw_eof = trio.Event()

    async def answer_then_wait(conn: ServerConn) -> None:
        await conn.request()
        await conn.stream.send_all(answer)  # in one write, so in one client read
        await conn.wait_eof()
        server_saw_eof.set()

    server = await start_server(nursery, answer_then_wait)
    client = UpstreamClient()
    response = await client.send("GET", server.url(), [], b"", connect_timeout=1)
    assert await response.read() == b"ok"  # the answer itself stands
    with trio.fail_after(TIMEOUT):
        await server_saw_eof.wait()  # closed by the client, not left for a timeout
    assert client.stats() == {"idle": 0, "active": 0, "opened": 1}


async def test_a_no_content_answer_keeps_the_connection(nursery: trio.Nursery) -> None:
    async def no_content(conn: ServerConn) -> None:
        while await conn.request() is not None:
            await conn.start(204)
            await conn.end()

    server = await start_server(nursery, no_content)
    client = UpstreamClient()
    for _ in range(3):
        response = await client.send("POST", server.url(), [], b"x", connect_timeout=1)
        assert (response.status, await response.read()) == (204, b"")
    assert client.stats() == {"idle": 1, "active": 0, "opened": 1}


async def test_a_large_body_arrives_whole(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, echo)
    client = UpstreamClient()
    body = bytes(range(256)) * 1000  # beyond the size joined to the head in one write
    response = await client.send("POST", server.url(), [], body, connect_timeout=TIMEOUT)
    echoed = await response.read()
    assert echoed.endswith(b" length=256000 x=- body=" + body)
    assert client.stats() == {"idle": 1, "active": 0, "opened": 1}


# -- failures ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connect_refused_is_an_upstream_connect_error() -> None:
    port = _free_port()  # nobody listens there once the socket is closed
    client = UpstreamClient()
    with pytest.raises(UpstreamConnectError) as raised:
        await client.send("GET", f"http://127.0.0.1:{port}/x", [], b"", connect_timeout=1)
    assert raised.value.message.startswith(f"http://127.0.0.1:{port}: cannot connect")
    assert client.stats() == {"idle": 0, "active": 0, "opened": 0}


async def test_connect_timeout_against_a_full_backlog(autojump_clock: trio.abc.Clock) -> None:
    # A listener that never accepts, with its backlog full: the kernel drops further SYNs,
    # so the connect hangs until our deadline (virtual time: the autojump clock skips it).
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = [socket.socket() for _ in range(8)]
    for filler in fillers:
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
    client = UpstreamClient()
    try:
        start = trio.current_time()
        with pytest.raises(UpstreamTimeout) as raised:
            await client.send("GET", f"http://127.0.0.1:{port}/", [], b"", connect_timeout=3)
        assert trio.current_time() - start == pytest.approx(3)
        assert raised.value.phase == "connect"
        assert str(port) in raised.value.message
    finally:
        for sock in [*fillers, listener]:
            sock.close()
    assert client.stats()["active"] == 0


async def test_tls_handshake_failure_is_a_connect_error(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, echo)  # plain HTTP where the client expects TLS
    client = UpstreamClient()
    url = f"https://127.0.0.1:{server.port}/"
    with pytest.raises(UpstreamConnectError, match=r"^https://127\.0\.0\.1:\d+: cannot connect"):
        await client.send("GET", url, [], b"", connect_timeout=TIMEOUT)
    assert client.stats() == {"idle": 0, "active": 0, "opened": 0}


@pytest.mark.parametrize(
    ("headers", "sent"),
    [
        ([(b"content-length", b"100")], b"0123456789"),
        ([(b"transfer-encoding", b"chunked")], b"5\r\nhello\r\n"),
    ],
    ids=["content-length", "chunked"],
)
async def test_server_closing_mid_body_is_a_protocol_error(
    nursery: trio.Nursery, headers: list[tuple[bytes, bytes]], sent: bytes
) -> None:
    async def truncate(conn: ServerConn) -> None:
        await conn.request()
        head = b"".join(b"%s: %s\r\n" % header for header in headers)
        await conn.stream.send_all(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n" + sent)
        # and the handler returns: the server closes the connection mid-body

    server = await start_server(nursery, truncate)
    client = UpstreamClient()
    response = await client.send("GET", server.url(), [], b"", connect_timeout=1)
    with pytest.raises(UpstreamProtocolError, match=r"^http://127\.0\.0\.1:\d+: broken response"):
        await response.read()
    await response.aclose()
    assert client.stats() == {"idle": 0, "active": 0, "opened": 1}


async def test_garbage_instead_of_a_response_is_a_protocol_error(nursery: trio.Nursery) -> None:
    async def garbage(conn: ServerConn) -> None:
        await conn.request()
        await conn.stream.send_all(b"SSH-2.0-OpenSSH\r\n\r\n")

    server = await start_server(nursery, garbage)
    client = UpstreamClient()
    with pytest.raises(UpstreamProtocolError):
        await client.send("GET", server.url(), [], b"", connect_timeout=1)
    assert client.stats() == {"idle": 0, "active": 0, "opened": 1}


async def test_an_endless_response_head_is_cut_off(nursery: trio.Nursery) -> None:
    async def endless_head(conn: ServerConn) -> None:
        await conn.request()
        await conn.stream.send_all(b"HTTP/1.1 200 OK\r\nx-big: ")
        while True:
            await conn.stream.send_all(b"a" * 8192)  # until the client gives up

    server = await start_server(nursery, endless_head)
    client = UpstreamClient()
    with trio.fail_after(TIMEOUT), pytest.raises(UpstreamProtocolError, match="head too large"):
        await client.send("GET", server.url(), [], b"", connect_timeout=1)
    assert client.stats() == {"idle": 0, "active": 0, "opened": 1}


# -- stale keep-alive connections --------------------------------------------------------------


async def test_reused_connection_dropped_by_server_is_retried_once(nursery: trio.Nursery) -> None:
    async def one_request_per_connection(conn: ServerConn) -> None:
        _, body = await conn.request() or pytest.fail("no request")
        await conn.respond(b"served " + body)
        # The second request on this connection is read and dropped unanswered: the race of
        # a server closing an idle keep-alive connection just as the client reuses it.
        await conn.request()

    server = await start_server(nursery, one_request_per_connection)
    client = UpstreamClient()
    for body in (b"a", b"b", b"c"):
        response = await client.send("POST", server.url(), [], body, connect_timeout=1)
        assert await response.read() == b"served " + body
    assert client.stats() == {"idle": 1, "active": 0, "opened": 3}


@pytest.mark.parametrize(
    ("idle_for", "exchanges"),
    [
        # Idle long enough to be checked before reuse: straight to a fresh connection.
        (TRUST_IDLE_FOR + 1, 1),
        # Back in the pool a moment ago: taken on trust, found closed by the EOF before any
        # byte of an answer, and the request goes again (the server never saw it).
        (0.0, 2),
    ],
)
async def test_a_connection_the_server_closed_while_idle_never_fails_a_request(
    nursery: trio.Nursery, mock_clock: MockClock, idle_for: float, exchanges: int
) -> None:
    closed = trio.Event()

    async def close_after_one(conn: ServerConn) -> None:
        _, body = await conn.request() or pytest.fail("no request")
        await conn.respond(b"served " + body)
        await conn.stream.aclose()
        closed.set()

    server = await start_server(nursery, close_after_one)
    client = UpstreamClient()
    first = await client.send("POST", server.url(), [], b"a", connect_timeout=1)
    assert await first.read() == b"served a"
    await closed.wait()
    mock_clock.jump(idle_for)
    sent_on: list[object] = []
    second = await client.send(
        "POST", server.url(), [], b"b", connect_timeout=1, on_exchange=sent_on.append
    )
    assert await second.read() == b"served b"
    assert len(sent_on) == exchanges  # connections the request went out on
    assert client.stats() == {"idle": 1, "active": 0, "opened": 2}
    assert server.accepted == 2


async def test_a_fresh_connection_failing_is_not_retried(nursery: trio.Nursery) -> None:
    async def drop(conn: ServerConn) -> None:
        await conn.request()  # and close without an answer

    server = await start_server(nursery, drop)
    client = UpstreamClient()
    with pytest.raises(UpstreamProtocolError, match="closed before a response"):
        await client.send("POST", server.url(), [], b"x", connect_timeout=1)
    assert server.accepted == 1
    assert client.stats() == {"idle": 0, "active": 0, "opened": 1}


# -- pool limits -------------------------------------------------------------------------------


def answer_once_all_in(count: int) -> Callable[[ServerConn], Awaitable[None]]:
    """A server handler that answers "ok" only once `count` requests are in, so that many
    connections are truly open at once."""
    all_in = trio.Event()
    in_flight = 0

    async def handler(conn: ServerConn) -> None:
        nonlocal in_flight
        while await conn.request() is not None:
            in_flight += 1
            if in_flight == count:
                all_in.set()
            await all_in.wait()
            await conn.respond(b"ok")

    return handler


async def test_idle_cap_holds_under_50_concurrent_requests(nursery: trio.Nursery) -> None:
    extra_closed = trio.Event()
    answer = answer_once_all_in(50)

    async def hold_until_all_arrived(conn: ServerConn) -> None:
        await answer(conn)
        if server.closed + 1 == 50 - 16:
            extra_closed.set()

    server = await start_server(nursery, hold_until_all_arrived)
    client = UpstreamClient(max_idle_per_origin=16)

    async def one() -> None:
        response = await client.send("GET", server.url(), [], b"", connect_timeout=TIMEOUT)
        assert await response.read() == b"ok"

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as requests:
            for _ in range(50):
                requests.start_soon(one)
        await extra_closed.wait()  # the server saw the 34 connections beyond the cap close
    assert client.stats() == {"idle": 16, "active": 0, "opened": 50}
    await client.aclose()
    assert client.stats() == {"idle": 0, "active": 0, "opened": 50}


async def test_connections_idle_past_the_expiry_close_when_another_returns(
    nursery: trio.Nursery, mock_clock: MockClock
) -> None:
    server = await start_server(nursery, answer_once_all_in(2))
    client = UpstreamClient(idle_expiry=30.0)

    async def one() -> None:
        response = await client.send("GET", server.url(), [], b"", connect_timeout=TIMEOUT)
        assert await response.read() == b"ok"

    async with trio.open_nursery() as requests:
        requests.start_soon(one)
        requests.start_soon(one)
    assert client.stats() == {"idle": 2, "active": 0, "opened": 2}
    mock_clock.jump(31.0)
    await one()  # takes the warmest; on return the other, idle for 31 s, is closed
    assert client.stats() == {"idle": 1, "active": 0, "opened": 2}
    await one()
    assert client.stats() == {"idle": 1, "active": 0, "opened": 2}  # the kept one still serves


# -- the error mapping -------------------------------------------------------------------------

ORIGIN = Origin(scheme="https", host="api.example.com", port=443)


@pytest.mark.parametrize(
    ("exc", "phase", "expected"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connect", UpstreamConnectError),
        (socket.gaierror(-2, "Name or service not known"), "connect", UpstreamConnectError),
        (
            ssl.SSLCertVerificationError("certificate verify failed"),
            "connect",
            UpstreamConnectError,
        ),
        (trio.TooSlowError(), "connect", UpstreamTimeout),
        (ConnectionResetError(104, "Connection reset by peer"), "exchange", UpstreamProtocolError),
        (trio.BrokenResourceError(), "exchange", UpstreamProtocolError),
        (httptools.HttpParserError("Invalid header value char"), "exchange", UpstreamProtocolError),
        (httptools.HttpParserUpgrade(60), "exchange", UpstreamProtocolError),
        (h11.RemoteProtocolError("bad status line"), "exchange", UpstreamProtocolError),
    ],
)
def test_foreign_exceptions_map_to_ours(exc: Exception, phase: str, expected: type) -> None:
    mapped = to_upstream_error(exc, ORIGIN, phase=phase)  # type: ignore[arg-type]
    assert type(mapped) is expected
    assert mapped.message.startswith("https://api.example.com:443: ")
    if expected is UpstreamTimeout:
        assert mapped.phase == "connect"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "leak",
    [
        httptools.HttpParserError("Invalid header value 'sk-ant-api03-secretsecret'"),
        h11.RemoteProtocolError("Illegal header value b'sk-ant-api03-secretsecret'"),
    ],
)
def test_mapped_messages_never_echo_header_values(leak: Exception) -> None:
    message = to_upstream_error(leak, ORIGIN, phase="exchange").message
    assert "secret" not in message
    name = type(leak).__name__
    assert message.startswith(f"https://api.example.com:443: broken response ({name}: ")


async def test_an_invalid_header_value_never_reaches_the_error(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, echo)
    client = UpstreamClient()
    key = b"sk-ant-api03-secret\r\nx-injected: 1"
    with pytest.raises(UpstreamProtocolError) as raised:
        await client.send("GET", server.url(), [(b"x-api-key", key)], b"", connect_timeout=1)
    assert "secret" not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    assert server.accepted == 0


@pytest.mark.parametrize(
    "header",
    [
        (b"x-api-key", b"sk-secret\nx-injected: 1"),
        (b"x-api-key", b"sk-secret\rx"),
        (b"x-api-key", b"sk-secret\x00"),
        (b"x-api-key", b"sk-secret\x7f"),
        (b"x-api-key: sk-secret", b"1"),
        (b"x api key", b"sk-secret"),
        (b"", b"sk-secret"),
    ],
    ids=["lf", "cr", "nul", "del", "colon-in-name", "space-in-name", "empty-name"],
)
async def test_invalid_request_headers_are_refused_before_any_io(
    nursery: trio.Nursery, header: tuple[bytes, bytes]
) -> None:
    server = await start_server(nursery, echo)
    client = UpstreamClient()
    good = (b"x-test", b"tab\tinside is fine")
    with pytest.raises(UpstreamProtocolError, match=r": invalid request headers$") as raised:
        await client.send("POST", server.url(), [good, header], b"{}", connect_timeout=1)
    assert "secret" not in str(raised.value)
    assert server.accepted == 0
    response = await client.send("POST", server.url(), [good], b"{}", connect_timeout=1)
    assert b" x=tab\tinside is fine " in await response.read()


# -- TLS ---------------------------------------------------------------------------------------


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh certificate for 127.0.0.1, and a client trusting it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ccx-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode("ascii"))
    return server, client


async def test_https_round_trip_verifies_the_certificate_and_reuses(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server_tls, client_tls = _self_signed(tmp_path)
    server = await start_server(nursery, echo, tls=server_tls)
    client = UpstreamClient(ssl_context=client_tls)
    for body in (b"one", b"two"):
        response = await client.send("POST", server.url("/v1"), [], body, connect_timeout=TIMEOUT)
        assert (await response.read()).endswith(b"body=" + body)
    assert client.stats() == {"idle": 1, "active": 0, "opened": 1}
    await client.aclose()

    # The default context does not trust our certificate: a verification failure on connect.
    untrusting = UpstreamClient()
    with pytest.raises(UpstreamConnectError, match="certificate verify failed"):
        await untrusting.send("GET", server.url(), [], b"", connect_timeout=TIMEOUT)
    assert untrusting.stats() == {"idle": 0, "active": 0, "opened": 0}


async def test_an_unusable_url_is_a_connect_error_before_any_io() -> None:
    client = UpstreamClient()
    for url in ("ftp://127.0.0.1/x", "http:///no-host", "http://127.0.0.1:99999/"):
        with pytest.raises(UpstreamConnectError):
            await client.send("GET", url, [], b"", connect_timeout=1)
    assert client.stats() == {"idle": 0, "active": 0, "opened": 0}


def test_the_head_drops_our_own_headers_in_any_case_and_keeps_lookalikes() -> None:
    from core.upstream_conn import encode_head

    headers = [
        (b"x-forwarded-host", b"a"),
        (b"Transfer-Encoding", b"chunked"),
        (b"HOST", b"evil"),
        (b"x-content-length-hint", b"5"),
    ]
    head = encode_head(b"POST", b"/p", b"up:1", headers, 2)
    assert head == (
        b"POST /p HTTP/1.1\r\nhost: up:1\r\nx-forwarded-host: a\r\n"
        b"x-content-length-hint: 5\r\ncontent-length: 2\r\n\r\n"
    )
    plain = [(b"accept", b"*/*")]
    assert encode_head(b"GET", b"/", b"up:1", plain, None) == (
        b"GET / HTTP/1.1\r\nhost: up:1\r\naccept: */*\r\n\r\n"
    )
