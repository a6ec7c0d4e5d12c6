"""The HTTP/1.1 server (core/server.py) against real clients on 127.0.0.1: httpx for the
ordinary paths, a raw trio socket where we need byte-level control (pipelining, garbage,
100-continue, resets). Synchronisation is by trio.Event, never by sleeping. The last
section covers the sans-IO wire format (core/http1.py) directly."""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import httpx
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from core.http import Request, Response
from core.http1 import (
    LAST_CHUNK,
    InvalidResponse,
    RequestParser,
    chunk,
    good_field_value,
    response_head,
)
from core.server import SWEEP_MAX_TICK, ServerInfo, ServerLimits, serve

Handler = Callable[[Request], Awaitable[Response]]


async def start(
    nursery: trio.Nursery, handler: Handler, limits: ServerLimits | None = None
) -> ServerInfo:
    server = partial(serve, handler, port=0, limits=limits or ServerLimits())
    info: ServerInfo = await nursery.start(server)
    return info


async def echo(request: Request) -> Response:
    body = json.dumps(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "body": request.body.decode(),
            "x-test": (request.header(b"x-test") or b"").decode(),
            "client": request.client,
        }
    ).encode()
    return Response(status=200, headers=[(b"content-type", b"application/json")], body=body)


class RawClient:
    """A byte-level HTTP/1.1 client: send anything, parse Content-Length/chunked answers."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    @classmethod
    async def connect(cls, info: ServerInfo) -> RawClient:
        return cls(await trio.open_tcp_stream(info.host, info.port))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> bool:
        data = await self.stream.receive_some(65536)
        self.buffer += data
        return bool(data)

    async def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            if not await self._fill():
                raise EOFError(bytes(self.buffer))
        index = self.buffer.index(marker) + len(marker)
        out = bytes(self.buffer[:index])
        del self.buffer[:index]
        return out

    async def read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not await self._fill():
                raise EOFError(bytes(self.buffer))
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    async def read_head(self) -> tuple[int, dict[str, str]]:
        head = (await self.read_until(b"\r\n\r\n")).decode("latin-1")
        status_line, *lines = head.split("\r\n")[:-2]
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"duplicate header {name}"
            headers[name.lower()] = value.strip()
        return int(status_line.split()[1]), headers

    async def read_chunk(self) -> bytes:
        size = int(await self.read_until(b"\r\n"), 16)
        data = await self.read_exactly(size + 2)
        return data[:-2]

    async def read_response(self, *, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        status, headers = await self.read_head()
        if head_only:
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            chunks = []
            while chunk := await self.read_chunk():  # the last chunk takes its CRLF too
                chunks.append(chunk)
            return status, headers, b"".join(chunks)
        return status, headers, await self.read_exactly(int(headers.get("content-length", "0")))

    async def at_eof(self) -> bool:
        """True when the server closed the connection (nothing more arrives)."""
        try:
            return not self.buffer and not await self._fill()
        except trio.BrokenResourceError:
            return True

    def reset(self) -> None:
        """Abort with RST (SO_LINGER 0), like a crashed client."""
        sock = self.stream.socket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()


def get(path: str = "/", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: t\r\n{extra}\r\n".encode()


# -- the ordinary paths ------------------------------------------------------------------


async def test_get_and_post_are_echoed_with_path_query_headers_and_body(
    nursery: trio.Nursery,
) -> None:
    info = await start(nursery, echo)
    async with httpx.AsyncClient(base_url=info.url) as client:
        got = (await client.get("/v1/models?x=1&y=", headers={"x-test": "hi"})).json()
        assert got["method"] == "GET"
        assert (got["path"], got["query"], got["x-test"]) == ("/v1/models", "x=1&y=", "hi")
        assert got["client"].startswith("127.0.0.1:")

        response = await client.post("/v1/messages", content=b'{"model":"m"}')
        assert response.status_code == 200
        assert response.headers["server"] == "ccx-tray"
        assert response.headers["content-length"] == str(len(response.content))
        assert response.json()["body"] == '{"model":"m"}'
        assert response.json()["query"] == ""


async def test_keep_alive_serves_many_requests_on_one_connection(nursery: trio.Nursery) -> None:
    info = await start(nursery, echo)
    async with httpx.AsyncClient(base_url=info.url) as client:
        peers = {(await client.post("/", content=b"x" * n)).json()["client"] for n in range(5)}
    assert len(peers) == 1  # same client port each time: the connection was reused


async def test_a_request_already_waiting_when_the_connection_is_accepted(
    nursery: trio.Nursery,
) -> None:
    # The two tasks of a connection take turns at reading; the first request here is read
    # before the second task ever ran, which must not leave it a spare turn.
    info = await start(nursery, echo)
    sock = socket.create_connection((info.host, info.port))  # blocking: sent before accept
    sock.sendall(get("/1"))
    client = RawClient(trio.SocketStream(trio.socket.from_stdlib_socket(sock)))
    for n in range(1, 5):
        if n > 1:
            await client.send(get(f"/{n}"))
        status, _, body = await client.read_response()
        assert (status, json.loads(body)["path"]) == (200, f"/{n}")


async def test_pipelined_requests_are_answered_in_order(nursery: trio.Nursery) -> None:
    info = await start(nursery, echo)
    client = await RawClient.connect(info)
    post = b"POST /b HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n\r\nhello"
    await client.send(get("/a") + post + get("/c?q=1"))
    bodies = [json.loads((await client.read_response())[2]) for _ in range(3)]
    assert [b["path"] for b in bodies] == ["/a", "/b", "/c"]
    assert bodies[1]["body"] == "hello"
    assert bodies[2]["query"] == "q=1"


async def test_pipelined_bytes_read_while_the_handler_runs_are_not_lost(
    nursery: trio.Nursery,
) -> None:
    # The disconnect watcher reads the socket while the first handler waits; the second
    # request it reads must still be served.
    release = trio.Event()
    entered = trio.Event()

    async def handler(request: Request) -> Response:
        if request.path == "/slow":
            entered.set()
            await release.wait()
        return await echo(request)

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    await client.send(get("/slow"))
    await entered.wait()
    await client.send(get("/second"))
    await trio.testing.wait_all_tasks_blocked()  # the watcher has read /second by now
    release.set()
    first = json.loads((await client.read_response())[2])
    second = json.loads((await client.read_response())[2])
    assert (first["path"], second["path"]) == ("/slow", "/second")


async def test_many_pipelined_requests_beyond_the_read_budget_all_get_answers(
    nursery: trio.Nursery,
) -> None:
    # More pipelined bytes than the reader buffers ahead (it pauses, then resumes).
    async def handler(request: Request) -> Response:
        return Response(status=200, body=str(len(request.body)).encode())

    info = await start(nursery, handler, ServerLimits(max_header_bytes=1024))
    client = await RawClient.connect(info)
    body = b"z" * 20_000
    request = b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 20000\r\n\r\n" + body

    async def send_all() -> None:
        await client.send(request * 40)  # 800 kB, far above the reader's budget

    async with trio.open_nursery() as senders:
        senders.start_soon(send_all)
        answers = [(await client.read_response())[2] for _ in range(40)]
    assert answers == [b"20000"] * 40


async def test_large_body_arrives_whole(nursery: trio.Nursery) -> None:
    async def handler(request: Request) -> Response:
        return Response(status=200, body=b"%d:%d" % (len(request.body), request.body.count(b"a")))

    info = await start(nursery, handler)
    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.post("/", content=b"a" * 5_000_000)
    assert response.content == b"5000000:5000000"


async def test_http_1_0_request_is_answered_and_closed(nursery: trio.Nursery) -> None:
    info = await start(nursery, echo)
    client = await RawClient.connect(info)
    await client.send(b"GET /old HTTP/1.0\r\n\r\n")
    status, _, body = await client.read_response()
    assert (status, json.loads(body)["path"]) == (200, "/old")
    assert await client.at_eof()


async def test_chunked_request_body_is_assembled(nursery: trio.Nursery) -> None:
    info = await start(nursery, echo)

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"alpha-", b"beta-", b"gamma"):
            yield part

    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.post("/", content=parts())
    assert response.json()["body"] == "alpha-beta-gamma"


async def test_streamed_response_reaches_the_client_chunk_by_chunk(nursery: trio.Nursery) -> None:
    first_seen = trio.Event()
    closed = trio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"data: one\n\n"
            await first_seen.wait()  # chunk 2 exists only after the client saw chunk 1
            yield b"data: two\n\n"
        finally:
            closed.set()

    async def handler(request: Request) -> Response:
        headers = [(b"content-type", b"text/event-stream"), (b"content-length", b"999")]
        return Response(status=200, headers=headers, stream=chunks())

    info = await start(nursery, handler)
    async with (
        httpx.AsyncClient(base_url=info.url) as client,
        client.stream("GET", "/") as response,
    ):
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers  # stream framing is the server's
        raw = response.aiter_raw()
        assert await raw.__anext__() == b"data: one\n\n"
        first_seen.set()
        assert [part async for part in raw] == [b"data: two\n\n"]
    assert closed.is_set()


async def test_a_stream_lead_goes_out_with_the_head_before_the_stream_is_iterated(
    nursery: trio.Nursery,
) -> None:
    lead_seen = trio.Event()

    async def rest() -> AsyncIterator[bytes]:
        await lead_seen.wait()  # the lead reached the client without the iterator's help
        yield b"data: two\n\n"

    async def handler(request: Request) -> Response:
        headers = [(b"content-type", b"text/event-stream")]
        return Response(status=200, headers=headers, body=b"data: one\n\n", stream=rest())

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    await client.send(get())
    status, headers = await client.read_head()
    assert (status, headers["transfer-encoding"]) == (200, "chunked")
    assert await client.read_chunk() == b"data: one\n\n"
    lead_seen.set()
    assert await client.read_chunk() == b"data: two\n\n"
    assert await client.read_chunk() == b""


async def test_head_sends_headers_only_and_the_connection_stays_usable(
    nursery: trio.Nursery,
) -> None:
    async def handler(request: Request) -> Response:
        return Response(status=200, body=b"hello")

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    await client.send(b"HEAD / HTTP/1.1\r\nhost: t\r\n\r\n")
    status, headers, _ = await client.read_response(head_only=True)
    assert (status, headers["content-length"]) == (200, "5")
    await client.send(get())
    assert await client.read_response() == (200, headers, b"hello")  # no stray body bytes


async def test_handler_content_length_is_not_duplicated(nursery: trio.Nursery) -> None:
    async def handler(request: Request) -> Response:
        return Response(status=200, headers=[(b"content-length", b"2")], body=b"ok")

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    await client.send(get())
    status, headers, body = await client.read_response()  # read_head rejects duplicates
    assert (status, headers["content-length"], body) == (200, "2", b"ok")


async def test_expect_100_continue_is_answered_before_the_body_is_sent(
    nursery: trio.Nursery,
) -> None:
    info = await start(nursery, echo)
    client = await RawClient.connect(info)
    await client.send(
        b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n"
    )
    assert (await client.read_head())[0] == 100
    await client.send(b"body")
    status, _, body = await client.read_response()
    assert (status, json.loads(body)["body"]) == (200, "body")


async def test_connection_close_from_the_client_is_honoured(nursery: trio.Nursery) -> None:
    info = await start(nursery, echo)
    client = await RawClient.connect(info)
    await client.send(get(extra="connection: close\r\n"))
    status, headers, _ = await client.read_response()
    assert (status, headers["connection"]) == (200, "close")
    assert await client.at_eof()


async def test_connection_close_from_the_handler_is_honoured(nursery: trio.Nursery) -> None:
    async def handler(request: Request) -> Response:
        return Response(status=200, headers=[(b"connection", b"close")], body=b"bye")

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    await client.send(get())
    assert (await client.read_response())[2] == b"bye"
    assert await client.at_eof()


# -- limits and malformed input ----------------------------------------------------------


async def test_declared_body_over_the_limit_is_refused_before_it_is_sent(
    nursery: trio.Nursery,
) -> None:
    info = await start(nursery, echo, ServerLimits(max_body_bytes=100))
    client = await RawClient.connect(info)
    await client.send(
        b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 1000\r\nexpect: 100-continue\r\n\r\n"
    )
    status, _, body = await client.read_response()
    assert status == 413  # and no 100 Continue before it
    assert json.loads(body)["error"]["type"] == "request_too_large"
    assert await client.at_eof()


async def test_chunked_body_over_the_limit_gets_413(nursery: trio.Nursery) -> None:
    info = await start(nursery, echo, ServerLimits(max_body_bytes=100))
    client = await RawClient.connect(info)
    chunk = b"40\r\n" + b"x" * 64 + b"\r\n"
    await client.send(
        b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n" + chunk * 3
    )
    assert (await client.read_response())[0] == 413


async def test_oversized_headers_get_431(nursery: trio.Nursery) -> None:
    info = await start(nursery, echo, ServerLimits(max_header_bytes=1024))
    client = await RawClient.connect(info)
    await client.send(get(extra=f"x-big: {'a' * 4000}\r\n"))
    assert (await client.read_response())[0] == 431


async def test_garbage_gets_400_and_the_server_keeps_serving(nursery: trio.Nursery) -> None:
    info = await start(nursery, echo)
    client = await RawClient.connect(info)
    await client.send(b"\x16\x03\x01 this is not http\r\n\r\n")
    status, headers, body = await client.read_response()
    assert (status, headers["connection"]) == (400, "close")
    assert json.loads(body)["error"]["type"] == "invalid_request"
    async with httpx.AsyncClient(base_url=info.url) as good:
        assert (await good.get("/")).status_code == 200


async def test_slow_request_gets_408(nursery: trio.Nursery, autojump_clock: object) -> None:
    limits = ServerLimits(request_timeout=5.0, keepalive_timeout=100.0)
    info = await start(nursery, echo, limits)
    client = await RawClient.connect(info)
    await client.send(b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\nhalf")
    start_time = trio.current_time()
    with trio.fail_after(10):
        assert (await client.read_response())[0] == 408
    # The sweeper notices within a quarter of the timeout (capped at SWEEP_MAX_TICK).
    assert 5.0 <= trio.current_time() - start_time <= 5.0 + SWEEP_MAX_TICK


async def test_idle_keep_alive_connection_is_closed_silently(
    nursery: trio.Nursery, autojump_clock: object
) -> None:
    info = await start(nursery, echo, ServerLimits(keepalive_timeout=30.0))
    client = await RawClient.connect(info)
    await client.send(get())
    await client.read_response()
    idle_since = trio.current_time()
    with trio.fail_after(60):
        assert await client.at_eof()  # no 408 bytes for an idle connection, just a close
    assert 30.0 <= trio.current_time() - idle_since <= 30.0 + SWEEP_MAX_TICK


async def test_a_slow_handler_is_not_cut_by_the_request_timeouts(
    nursery: trio.Nursery, autojump_clock: object
) -> None:
    # The timeouts bound receiving the request, never the handler (an upstream may be slow).
    async def handler(request: Request) -> Response:
        await trio.sleep(500)
        return Response(status=200, body=b"late but fine")

    limits = ServerLimits(request_timeout=5.0, keepalive_timeout=30.0)
    info = await start(nursery, handler, limits)
    client = await RawClient.connect(info)
    await client.send(get())
    assert (await client.read_response())[2] == b"late but fine"


# -- failures and disconnects ------------------------------------------------------------


async def test_handler_exception_gives_500_and_the_server_lives_on(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: Request) -> Response:
        if request.path == "/boom":
            raise RuntimeError("kaboom")
        return Response(status=200, body=b"fine")

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    with caplog.at_level(logging.ERROR, logger="ccx.server"):
        await client.send(get("/boom"))
        status, headers, body = await client.read_response()
    assert status == 500
    assert json.loads(body) == {"error": {"type": "internal", "message": "internal error"}}
    assert headers["connection"] == "close"
    assert await client.at_eof()
    assert any("kaboom" in (r.exc_text or "") for r in caplog.records)
    async with httpx.AsyncClient(base_url=info.url) as good:
        assert (await good.get("/")).content == b"fine"


async def test_invalid_response_from_the_handler_gives_500(nursery: trio.Nursery) -> None:
    async def handler(request: Request) -> Response:
        return Response(status=200, headers=[(b"x-bad", b"line\r\nbreak")], body=b"x")

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    await client.send(get())
    assert (await client.read_response())[0] == 500  # never a header-injected response


async def test_client_disconnect_cancels_the_running_handler(nursery: trio.Nursery) -> None:
    entered = trio.Event()
    cancelled = trio.Event()

    async def handler(request: Request) -> Response:
        entered.set()
        try:
            await trio.sleep_forever()  # "waiting for the upstream"
        except trio.Cancelled:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    await client.send(get())
    await entered.wait()
    await client.stream.aclose()
    with trio.fail_after(5):
        await cancelled.wait()


async def test_client_disconnect_mid_stream_closes_the_stream(nursery: trio.Nursery) -> None:
    closed = trio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            await trio.sleep_forever()
            yield b"never"
        finally:
            closed.set()

    async def handler(request: Request) -> Response:
        return Response(status=200, stream=chunks())

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    await client.send(get())
    await client.read_head()
    assert await client.read_chunk() == b"first"
    await client.stream.aclose()
    with trio.fail_after(5):
        await closed.wait()


async def test_after_runs_once_when_the_response_is_done_with(nursery: trio.Nursery) -> None:
    calls: list[str] = []
    done = trio.Event()

    def after(label: str) -> None:
        calls.append(label)
        done.set()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"part"

    async def handler(request: Request) -> Response:
        if request.path == "/stream":
            return Response(status=200, stream=chunks(), after=partial(after, "stream"))
        return Response(status=200, body=b"whole", after=partial(after, "body"))

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    for path, label, body in (("/body", "body", b"whole"), ("/stream", "stream", b"part")):
        done = trio.Event()
        await client.send(get(path))
        assert (await client.read_response())[2] == body
        with trio.fail_after(5):
            await done.wait()
        assert calls[-1] == label
    assert calls == ["body", "stream"]


async def test_after_runs_when_the_client_leaves_before_taking_the_body(
    nursery: trio.Nursery,
) -> None:
    called = trio.Event()
    big = b"x" * (32 * 1024 * 1024)  # far beyond the socket buffers: the write must wait

    async def handler(request: Request) -> Response:
        return Response(status=200, body=big, after=called.set)

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    await client.send(get())
    await client.read_until(b"\r\n\r\n")  # the head went out; the body cannot all follow
    client.reset()
    with trio.fail_after(5):
        await called.wait()


async def test_a_stream_that_reports_itself_closed_is_not_closed_again(
    nursery: trio.Nursery,
) -> None:
    class Finished:
        """Ends on its own and says so (as the proxy's relay does once accounted for)."""

        closed = False
        aclose_calls = 0

        def __aiter__(self) -> Finished:
            return self

        async def __anext__(self) -> bytes:
            if self.closed:
                raise StopAsyncIteration
            self.closed = True
            return b"all"

        async def aclose(self) -> None:
            self.aclose_calls += 1

    stream = Finished()

    async def handler(request: Request) -> Response:
        return Response(status=200, stream=stream)

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    await client.send(get())
    assert (await client.read_response())[2] == b"all"
    await client.send(get())  # the connection went on: the first response was done with
    await client.read_head()
    assert stream.aclose_calls == 0


async def test_stream_that_is_never_iterated_is_still_closed_for_head(
    nursery: trio.Nursery,
) -> None:
    closed = trio.Event()

    class Chunks:
        def __aiter__(self) -> Chunks:
            return self

        async def __anext__(self) -> bytes:
            raise AssertionError("HEAD must not iterate the stream")

        async def aclose(self) -> None:
            closed.set()

    async def handler(request: Request) -> Response:
        return Response(status=200, stream=Chunks())

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    await client.send(b"HEAD / HTTP/1.1\r\nhost: t\r\n\r\n")
    assert (await client.read_response(head_only=True))[0] == 200
    with trio.fail_after(5):
        await closed.wait()


async def test_failing_stream_truncates_the_body_and_the_server_lives_on(
    nursery: trio.Nursery,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"partial"
        raise RuntimeError("upstream broke")

    async def handler(request: Request) -> Response:
        if request.path == "/ok":
            return Response(status=200, body=b"ok")
        return Response(status=200, stream=chunks())

    info = await start(nursery, handler)
    async with httpx.AsyncClient(base_url=info.url) as client:
        with pytest.raises(httpx.RemoteProtocolError):  # not a silent clean end
            await client.get("/")
        assert (await client.get("/ok")).content == b"ok"


async def test_client_reset_does_not_kill_the_server(nursery: trio.Nursery) -> None:
    entered = trio.Event()

    async def handler(request: Request) -> Response:
        if request.path == "/hang":
            entered.set()
            await trio.sleep_forever()
        return Response(status=200, body=b"alive")

    info = await start(nursery, handler)
    bystander = await RawClient.connect(info)
    victim = await RawClient.connect(info)
    await victim.send(get("/hang"))
    await entered.wait()
    victim.reset()
    half = await RawClient.connect(info)
    await half.send(b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\nabc")
    half.reset()  # reset mid-request, while the server reads the body
    await bystander.send(get())
    assert (await bystander.read_response())[2] == b"alive"


# -- shutdown ----------------------------------------------------------------------------


async def test_drain_lets_the_in_flight_request_finish_then_returns(
    nursery: trio.Nursery,
) -> None:
    entered = trio.Event()
    release = trio.Event()
    drain = trio.Event()
    stopped = trio.Event()

    async def handler(request: Request) -> Response:
        entered.set()
        await release.wait()
        return Response(status=200, body=b"finished")

    async def run(task_status: trio.TaskStatus[ServerInfo]) -> None:
        await serve(handler, port=0, drain=drain, task_status=task_status)
        stopped.set()

    info: ServerInfo = await nursery.start(run)
    idle = await RawClient.connect(info)
    busy = await RawClient.connect(info)
    await busy.send(get())
    await entered.wait()
    drain.set()
    assert await idle.at_eof()  # idle keep-alive connections close at once
    with pytest.raises(OSError):
        await trio.open_tcp_stream(info.host, info.port)  # no longer accepting
    assert not stopped.is_set()
    release.set()
    status, headers, body = await busy.read_response()
    assert (status, headers["connection"], body) == (200, "close", b"finished")
    with trio.fail_after(5):
        await stopped.wait()


async def test_drain_timeout_cancels_what_is_left(
    nursery: trio.Nursery, autojump_clock: object
) -> None:
    cancelled = trio.Event()
    entered = trio.Event()
    drain = trio.Event()

    async def handler(request: Request) -> Response:
        entered.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    async def run(task_status: trio.TaskStatus[ServerInfo]) -> None:
        await serve(handler, drain=drain, drain_timeout=3.0, task_status=task_status)

    info: ServerInfo = await nursery.start(run)
    client = await RawClient.connect(info)
    await client.send(get())
    await entered.wait()
    drain_time = trio.current_time()
    drain.set()
    await cancelled.wait()
    assert trio.current_time() - drain_time == pytest.approx(3.0)


async def test_cancelling_serve_closes_the_listener() -> None:
    async with trio.open_nursery() as nursery:
        info = await start(nursery, echo)
        nursery.cancel_scope.cancel()
    with pytest.raises(OSError):
        await trio.open_tcp_stream(info.host, info.port)


# -- the wire format (core/http1.py, httptools underneath) -------------------------------


async def test_status_line_carries_the_standard_reason_phrase(nursery: trio.Nursery) -> None:
    async def handler(request: Request) -> Response:
        return Response(status=int(request.path[1:]), body=b"")

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    lines = []
    for status in ("200", "404", "529"):
        await client.send(get(f"/{status}"))
        lines.append(await client.read_until(b"\r\n"))
        await client.read_until(b"\r\n\r\n")
    assert lines == [b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 404 Not Found\r\n", b"HTTP/1.1 529 \r\n"]


async def test_header_names_are_lowercased_and_values_trimmed(nursery: trio.Nursery) -> None:
    info = await start(nursery, echo)
    client = await RawClient.connect(info)
    await client.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Test:   padded \t \r\n\r\n")
    assert json.loads((await client.read_response())[2])["x-test"] == "padded"


async def test_http_1_1_request_needs_exactly_one_host(nursery: trio.Nursery) -> None:
    info = await start(nursery, echo)
    for head in (b"GET / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n"):
        client = await RawClient.connect(info)
        await client.send(head)
        assert (await client.read_response())[0] == 400
        assert await client.at_eof()


async def test_pipelined_request_after_connection_close_is_not_served(
    nursery: trio.Nursery,
) -> None:
    seen: list[str] = []

    async def handler(request: Request) -> Response:
        seen.append(request.path)
        return Response(status=200, body=b"ok")

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    await client.send(get("/last", "connection: close\r\n") + get("/ignored"))
    assert (await client.read_response())[2] == b"ok"
    assert await client.at_eof()
    assert seen == ["/last"]


async def test_garbage_after_a_good_pipelined_request_answers_it_first(
    nursery: trio.Nursery,
) -> None:
    info = await start(nursery, echo)
    client = await RawClient.connect(info)
    await client.send(get("/good") + b"NOT HTTP AT ALL\r\n\r\n")
    status, _, body = await client.read_response()
    assert (status, json.loads(body)["path"]) == (200, "/good")
    assert (await client.read_response())[0] == 400
    assert await client.at_eof()


async def test_header_growing_over_many_reads_gets_431(nursery: trio.Nursery) -> None:
    # llhttp itself would buffer an endless header value; the server counts what it fed.
    info = await start(nursery, echo, ServerLimits(max_header_bytes=1024))
    client = await RawClient.connect(info)

    async def send_forever() -> None:
        await client.send(b"GET / HTTP/1.1\r\nhost: t\r\nx-long: ")
        while True:
            await client.send(b"a" * 8192)

    async with trio.open_nursery() as sender:
        sender.start_soon(send_forever)
        with trio.fail_after(5):
            assert (await client.read_response())[0] == 431
        sender.cancel_scope.cancel()


async def test_upgrade_request_is_served_as_a_plain_request_then_closed(
    nursery: trio.Nursery,
) -> None:
    info = await start(nursery, echo)
    client = await RawClient.connect(info)
    await client.send(get("/ws", "upgrade: websocket\r\nconnection: upgrade\r\n") + b"\x81\x00")
    status, headers, body = await client.read_response()
    assert (status, headers["connection"], json.loads(body)["path"]) == (200, "close", "/ws")
    assert await client.at_eof()


async def test_stream_to_an_http_1_0_client_ends_by_closing(nursery: trio.Nursery) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"one,"
        yield b"two"

    async def handler(request: Request) -> Response:
        return Response(status=200, headers=[(b"content-length", b"7")], stream=chunks())

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    await client.send(b"GET / HTTP/1.0\r\n\r\n")
    status, headers = await client.read_head()
    assert (status, headers["connection"]) == (200, "close")
    assert "transfer-encoding" not in headers and "content-length" not in headers
    body = bytearray()
    while not await client.at_eof():
        body += client.buffer
        client.buffer.clear()
    assert bytes(body + client.buffer) == b"one,two"


async def test_bodiless_status_streams_no_body_and_keeps_the_connection(
    nursery: trio.Nursery,
) -> None:
    async def nothing() -> AsyncIterator[bytes]:
        raise AssertionError("a 204 must not iterate the stream")
        yield b""  # pragma: no cover

    async def handler(request: Request) -> Response:
        if request.path == "/204":
            return Response(status=204, stream=nothing())
        return Response(status=200, body=b"next")

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    await client.send(get("/204"))
    status, headers = await client.read_head()
    assert status == 204 and "transfer-encoding" not in headers
    await client.send(get("/"))
    assert (await client.read_response())[2] == b"next"


async def test_body_not_matching_its_content_length_gives_500(nursery: trio.Nursery) -> None:
    async def handler(request: Request) -> Response:
        return Response(status=200, headers=[(b"content-length", b"10")], body=b"short")

    info = await start(nursery, handler)
    client = await RawClient.connect(info)
    await client.send(get())
    assert (await client.read_response())[0] == 500
    # ...while HEAD may declare the length of the body it does not send.
    client = await RawClient.connect(info)
    await client.send(b"HEAD / HTTP/1.1\r\nhost: t\r\n\r\n")
    status, headers, _ = await client.read_response(head_only=True)
    assert (status, headers["content-length"]) == (200, "10")


def test_parser_gives_the_same_requests_whatever_the_read_boundaries() -> None:
    wire = (
        get("/a?x=1", "x-test: 1\r\n")
        + b"POST /b HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
        + b"3\r\nabc\r\n2\r\nde\r\n0\r\nx-trailer: dropped\r\n\r\n"
        + b"POST /c HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\nhi"
    )

    def parse(pieces: list[bytes]) -> list[tuple[str, str, str, bytes, int]]:
        parser = RequestParser(
            max_header_bytes=1024, max_body_bytes=1024, client="c", read_size=1024
        )
        for piece in pieces:
            parser.feed(piece)
        assert parser.error is None and not parser.in_message
        return [
            (
                r.request.method,
                r.request.path,
                r.request.query,
                r.request.body,
                len(r.request.headers),
            )
            for r in parser.ready
        ]

    whole = parse([wire])
    assert whole == [
        ("GET", "/a", "x=1", b"", 2),
        ("POST", "/b", "", b"abcde", 2),  # the trailer is not a header
        ("POST", "/c", "", b"hi", 2),
    ]
    assert parse([wire[i : i + 1] for i in range(len(wire))]) == whole


def test_parser_refuses_a_declared_body_over_the_limit_before_it_arrives() -> None:
    parser = RequestParser(max_header_bytes=1024, max_body_bytes=10, client="c", read_size=1024)
    parser.feed(b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 11\r\nexpect: 100-continue\r\n\r\n")
    assert (parser.error, parser.wants_continue, list(parser.ready)) == (413, False, [])


def test_response_head_frames_and_validates() -> None:
    head = response_head(
        200,
        [(b"content-length", b"2"), (b"content-length", b"2"), (b"connection", b"keep-alive")],
        body_length=2,
        head_only=False,
        http_10=False,
        close=True,
    )
    assert head.data == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nserver: ccx-tray\r\nconnection: close\r\n\r\n"
    )
    assert (head.framing, head.close) == ("length", True)
    stream = response_head(
        200,
        [(b"Connection", b"Close")],
        body_length=None,
        head_only=False,
        http_10=False,
        close=False,
    )
    assert (stream.framing, stream.close) == ("chunked", True)
    assert b"transfer-encoding: chunked\r\n" in stream.data
    for bad in (
        [(b"x bad", b"v")],
        [(b"x", b" leading")],
        [(b"x", b"nul\x00")],
        [(b"content-length", b"1"), (b"content-length", b"2")],
        [(b"content-length", b"-1")],
    ):
        with pytest.raises(InvalidResponse):
            response_head(200, bad, body_length=1, head_only=False, http_10=False, close=False)
    with pytest.raises(InvalidResponse):
        response_head(101, [], body_length=0, head_only=False, http_10=False, close=False)
    assert chunk(b"hello") + LAST_CHUNK == b"5\r\nhello\r\n0\r\n\r\n"


@settings(max_examples=500)
@given(
    st.binary(max_size=12)
    | st.text(alphabet=" \t\x00\r\n\x0b\x0cab:,", max_size=12).map(str.encode)
)
def test_field_values_are_checked_as_h11_grammar_says(value: bytes) -> None:
    h11_grammar = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?").fullmatch
    good = h11_grammar(value) is not None
    assert good_field_value(value) == good
    try:  # and the check response_head makes inline, per header
        response_head(
            200, [(b"x-v", value)], body_length=0, head_only=False, http_10=False, close=False
        )
    except InvalidResponse:
        assert not good
    else:
        assert good
