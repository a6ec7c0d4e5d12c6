"""Micro-benchmark of core/server.py: CPU time the *server process* spends per request.

The server runs in a child process (so the load generator's CPU is not counted) and answers
`GET /cpu` with its own CPU time (`time.process_time()`, nanosecond clock; the user/system
split comes from `getrusage`, which the kernel apportions by 10 ms ticks, so it is rough);
the figure is the difference around each load phase divided by the number of requests (or
stream chunks). Each phase runs `--rounds` times and the median round is printed (other
processes on the box add noise, mostly upwards).

    python bench/server_bench.py [--requests 5000] [--connections 20] [--rounds 5]

Phases: sequential keep-alive small POSTs on one connection; the same spread over
concurrent keep-alive connections; one streamed response of many small chunks.
For tuning only: numbers vary with the machine; compare runs on the same box.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.http import Request, Response  # noqa: E402
from core.server import ServerInfo, serve  # noqa: E402

CHUNK = b"data: " + b"x" * 94 + b"\n\n"
BODY = b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}'
POST = (
    b"POST /v1/messages HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


# -- the server side (child process) ------------------------------------------------------


async def bench_handler(request: Request) -> Response:
    if request.path == "/cpu":
        usage = resource.getrusage(resource.RUSAGE_SELF)
        total = time.process_time()
        return Response(status=200, body=b"%r %r %r" % (total, usage.ru_utime, usage.ru_stime))
    if request.path == "/stream":
        count = int(request.query_params().get("n", "1000"))

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(count):
                yield CHUNK

        return Response(status=200, stream=chunks())
    body = b'{"id":"msg_1","ok":true,"n":%d}' % len(request.body)
    return Response(status=200, headers=[(b"content-type", b"application/json")], body=body)


async def run_server() -> None:
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(serve, bench_handler)
        print(info.port, flush=True)


# -- the load side (parent process) -------------------------------------------------------


class Conn:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def roundtrip(self, request: bytes) -> bytes:
        """Send one request, return the body of a Content-Length response."""
        await self.stream.send_all(request)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += await self.stream.receive_some(65536)
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        while len(rest) < length:
            rest += await self.stream.receive_some(65536)
        self.buffer = rest[length:]
        return rest[:length]

    async def drain_chunked(self, request: bytes) -> int:
        """Send one request and read a chunked response to its end; returns bytes read."""
        await self.stream.send_all(request)
        total = 0
        data = self.buffer
        while not data.endswith(b"0\r\n\r\n"):
            data = await self.stream.receive_some(65536)
            total += len(data)
        self.buffer = b""
        return total


async def server_cpu(conn: Conn) -> tuple[float, float, float]:
    """(total, user, system) CPU seconds of the server process so far."""
    answer = await conn.roundtrip(b"GET /cpu HTTP/1.1\r\nhost: bench\r\n\r\n")
    total, user, system = (float(part) for part in answer.split())
    return total, user, system


Phase = tuple[float, float, float, float]  # (total, user, system) us of CPU per unit, wall s


async def load(port: int, requests: int, connections: int, chunks: int, rounds: int) -> None:
    control = Conn(await trio.open_tcp_stream("127.0.0.1", port))
    one = Conn(await trio.open_tcp_stream("127.0.0.1", port))
    for _ in range(200):  # warm up
        await one.roundtrip(POST)
    conns = [Conn(await trio.open_tcp_stream("127.0.0.1", port)) for _ in range(connections)]

    async def sequential() -> int:
        for _ in range(requests):
            await one.roundtrip(POST)
        return requests

    async def worker(conn: Conn, n: int) -> None:
        for _ in range(n):
            await conn.roundtrip(POST)

    async def concurrent() -> int:
        async with trio.open_nursery() as nursery:
            for conn in conns:
                nursery.start_soon(worker, conn, requests // connections)
        return requests // connections * connections

    async def stream() -> int:
        await one.drain_chunked(b"GET /stream?n=%d HTTP/1.1\r\nhost: bench\r\n\r\n" % chunks)
        return chunks

    phases = [
        ("sequential keep-alive POST", sequential),
        (f"{connections} concurrent keep-alive POST", concurrent),
        ("stream chunks (100 B each)", stream),
    ]
    for name, phase in phases:
        results = [await measure(control, phase) for _ in range(rounds)]
        report(name, sorted(results)[len(results) // 2])


async def measure(control: Conn, phase: Callable[[], Awaitable[int]]) -> Phase:
    before, wall = await server_cpu(control), time.perf_counter()
    count = await phase()
    wall = time.perf_counter() - wall
    after = await server_cpu(control)
    total, user, system = ((a - b) / count * 1e6 for a, b in zip(after, before, strict=True))
    return total, user, system, wall


def report(name: str, phase: Phase) -> None:
    total, user, system, wall = phase
    print(
        f"{name:30s} {total:7.1f} us CPU each (~user {user:6.1f}, ~sys {system:6.1f})"
        f"  [median round: {wall:.2f} s wall]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--chunks", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.serve:
        trio.run(run_server)
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        trio.run(load, port, args.requests, args.connections, args.chunks, args.rounds)
    finally:
        child.terminate()
        child.wait()


if __name__ == "__main__":
    main()
