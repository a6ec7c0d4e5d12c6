"""Upstream client benchmark: CPU per request and per relayed chunk, over loopback.

Compares three ways to talk to an upstream, each relaying the body chunk by chunk:
  httpx      httpx.AsyncClient, send(stream=True) + aiter_raw (the baseline)
  httpcore   httpcore.AsyncHTTPConnection used directly (one keep-alive connection)
  ours       core.upstream.UpstreamClient (httptools over trio streams, own pool)
  floor      raw trio socket reads, no HTTP parsing: what any trio client pays at least

The upstream is a minimal raw-trio HTTP/1.1 server running in a child process, so the
client's `time.process_time()` counts the client only. Run: `python bench/client_bench.py`
(options: --requests N --chunks N --gap-us N --rounds N). Each client is measured in
`--rounds` interleaved rounds and the least CPU of each figure is kept (noise only adds).
Figures are printed absolute and as ratios to httpx. To compare with an older client,
export that commit and point `--ours-root` at it:
`git archive REV core | tar -x -C /tmp/old && python bench/client_bench.py --ours-root /tmp/old`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

_BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":16}'
_SMALL = b'{"id":"msg_1","type":"message","content":[{"type":"text","text":"hello"}]}'
_EVENT = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"hi"}}\n\n'
)


# -- the upstream server (child process) -------------------------------------------------------


async def _serve_conn(stream: trio.abc.Stream, gap: float) -> None:
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buf) < length:
                buf += await stream.receive_some(65536)
            buf = buf[length:]
            target = head.split(b" ", 2)[1]
            if target.startswith(b"/stream/"):
                await _send_stream(stream, int(target.rsplit(b"/", 1)[1]), gap)
            else:
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(_SMALL), _SMALL)
                )
    except trio.BrokenResourceError:
        return


async def _send_stream(stream: trio.abc.Stream, chunks: int, gap: float) -> None:
    await stream.send_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    frame = b"%x\r\n%s\r\n" % (len(_EVENT), _EVENT)
    for _ in range(chunks):
        await stream.send_all(frame)
        if gap:
            await trio.sleep(gap)  # one chunk per client read, as a real token stream
    await stream.send_all(b"0\r\n\r\n")


async def _server_main(gap: float) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(listeners[0].socket.getsockname()[1], flush=True)

    async def handler(stream: trio.SocketStream) -> None:
        await _serve_conn(stream, gap)

    await trio.serve_listeners(handler, listeners)


# -- the clients ---------------------------------------------------------------------------


Relay = Callable[[str], Awaitable[int]]  # url -> body bytes relayed (raw bytes for the floor)


async def _with_httpx(run: Callable[[Relay], Awaitable[None]]) -> None:
    import httpx

    async with httpx.AsyncClient() as client:

        async def relay(url: str) -> int:
            request = client.build_request("POST", url, content=_BODY)
            response = await client.send(request, stream=True)
            n = 0
            try:
                async for chunk in response.aiter_raw():
                    n += len(chunk)
            finally:
                await response.aclose()
            return n

        await run(relay)


async def _with_httpcore(run: Callable[[Relay], Awaitable[None]]) -> None:
    import httpcore

    conns: dict[tuple[bytes, int], httpcore.AsyncHTTPConnection] = {}

    async def relay(url: str) -> int:
        request = httpcore.Request(
            "POST",
            url,
            headers=[(b"host", b"127.0.0.1"), (b"content-length", str(len(_BODY)).encode())],
            content=_BODY,
        )
        key = (request.url.host, request.url.port or 80)
        conn = conns.get(key)
        if conn is None or not conn.is_available():
            conn = conns[key] = httpcore.AsyncHTTPConnection(request.url.origin)
        response = await conn.handle_async_request(request)
        n = 0
        try:
            async for chunk in response.stream:  # type: ignore[union-attr]
                n += len(chunk)
        finally:
            await response.aclose()
        return n

    await run(relay)
    for conn in conns.values():
        await conn.aclose()


async def _with_ours(run: Callable[[Relay], Awaitable[None]]) -> None:
    from core.upstream import UpstreamClient

    client = UpstreamClient()
    headers = [(b"content-type", b"application/json")]

    async def relay(url: str) -> int:
        response = await client.send("POST", url, headers, _BODY, connect_timeout=5)
        n = 0
        try:
            async for chunk in response.iter_raw():
                n += len(chunk)
        finally:
            await response.aclose()
        return n

    await run(relay)
    await client.aclose()


async def _with_floor(run: Callable[[Relay], Awaitable[None]]) -> None:
    """Not an HTTP client: raw trio reads on one connection, the floor any client pays."""
    streams: dict[str, trio.SocketStream] = {}

    async def relay(url: str) -> int:
        host, _, rest = url.removeprefix("http://").partition("/")
        stream = streams.get(host)
        if stream is None:
            name, _, port = host.partition(":")
            stream = streams[host] = await trio.open_tcp_stream(name, int(port))
        await stream.send_all(
            b"POST /%s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n\r\n%s"
            % (rest.encode(), host.encode(), len(_BODY), _BODY)
        )
        n = 0
        # Ends on the last chunk or on a small body: enough for a floor, not a parser.
        while True:
            data = await stream.receive_some(65536)
            n += len(data)
            if data.endswith((b"0\r\n\r\n", b"}")):
                return n

    await run(relay)
    for stream in streams.values():
        await stream.aclose()


CLIENTS = {
    "httpx": _with_httpx,
    "httpcore": _with_httpcore,
    "ours": _with_ours,
    "floor": _with_floor,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    us_per_request: float
    us_per_chunk: float


async def _measure(name: str, base: str, requests: int, chunks: int) -> Result:
    out: dict[str, float] = {}

    async def run(relay: Relay) -> None:
        for _ in range(50):  # warm-up: connection, caches
            await relay(base + "/small")
        cpu = time.process_time()
        for _ in range(requests):
            await relay(base + "/small")
        out["req"] = (time.process_time() - cpu) / requests
        cpu = time.process_time()
        got = await relay(f"{base}/stream/{chunks}")
        # Bytes, not chunks: a client may join events that arrived in one network read.
        assert got == chunks * len(_EVENT) or name == "floor", (name, got)
        out["chunk"] = (time.process_time() - cpu - out["req"]) / chunks

    await CLIENTS[name](run)
    return Result(us_per_request=out["req"] * 1e6, us_per_chunk=out["chunk"] * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--gap-us", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ours-root", help="import core.upstream from this checkout")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ours_root:
        sys.path.insert(0, args.ours_root)
    if args.serve:
        trio.run(_server_main, args.gap_us / 1e6)
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--gap-us", str(args.gap_us)],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        base = f"http://127.0.0.1:{int(server.stdout.readline())}"
        rounds = [
            {name: trio.run(_measure, name, base, args.requests, args.chunks) for name in CLIENTS}
            for _ in range(args.rounds)
        ]
        results = {
            name: Result(
                us_per_request=min(r[name].us_per_request for r in rounds),
                us_per_chunk=min(r[name].us_per_chunk for r in rounds),
            )
            for name in CLIENTS
        }
    finally:
        server.terminate()
        server.wait()
    ref = results["httpx"]
    print(f"{'client':10} {'us/request':>11} {'ratio':>6} {'us/chunk':>9} {'ratio':>6}")
    for name, r in results.items():
        print(
            f"{name:10} {r.us_per_request:11.0f} {r.us_per_request / ref.us_per_request:6.2f}"
            f" {r.us_per_chunk:9.1f} {r.us_per_chunk / ref.us_per_chunk:6.2f}"
        )


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    main()
