"""A cheap HTTP/1.1 load generator on raw trio sockets.

Owns: `run_load(spec) -> LoadResult` and `python -m bench.loadgen --port P --clients N
--requests N [--stream] [--kind anthropic|openai|openai-responses|gemini]`.

Rules:
- Cheap per request: the request bytes are built once; a response is parsed only for its
  status and framing (Content-Length, chunked, or close-delimited), never as JSON.
- Each client is one keep-alive connection issuing requests back to back; it reconnects
  only when the server closes or a request fails.
- Bounded: at most `requests` requests in total and at most `duration` seconds.
- The time to first event of a stream is when the first `data:` of the body arrives.
- `cpu_share` is this process's CPU time over wall time during the run: near 1.0 means the
  generator, not the server, set the pace.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from dataclasses import dataclass, field

import trio

from bench.payloads import Kind, build_request

HOST = "127.0.0.1"
RECV = 65536


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadSpec:
    port: int
    request: bytes  # complete request bytes, sent as is for every request
    clients: int = 1
    requests: int = 1000  # in total, over all clients
    duration: float = 60.0  # hard cap, seconds
    stream: bool = False  # measure time to first `data:` event
    expect: bytes | None = None  # must appear in the last 512 bytes of each good response
    host: str = HOST


@dataclass(slots=True, kw_only=True)
class LoadResult:
    completed: int = 0  # responses fully received with status 2xx (and `expect` found)
    failed: int = 0  # transport errors, truncated bodies, non-2xx, missing `expect`
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds, completed requests
    first_events: list[float] = field(default_factory=list)  # seconds, completed streams
    wall: float = 0.0
    cpu: float = 0.0
    timed_out: bool = False

    @property
    def rps(self) -> float:
        return self.completed / self.wall if self.wall else 0.0

    @property
    def cpu_share(self) -> float:
        return self.cpu / self.wall if self.wall else 0.0

    def latency(self, q: float) -> float:
        return percentile(self.latencies, q)

    def first_event(self, q: float) -> float:
        return percentile(self.first_events, q)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank; NaN when there is nothing to rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[rank]


class _Failed(Exception):
    """The request failed; the connection is not reusable."""


class _Client:
    """One connection's receive buffer and the framing parser for one response."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.sock: trio.socket.SocketType | None = None
        self.buf = bytearray()

    async def connect(self) -> trio.socket.SocketType:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await sock.connect((self.spec.host, self.spec.port))
        except OSError:
            sock.close()
            raise
        self.buf.clear()
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    async def recv(self) -> int:
        assert self.sock is not None
        data = await self.sock.recv(RECV)
        if not data:
            raise _Failed("closed by peer")
        self.buf += data
        return len(data)

    async def one(self, start: float) -> tuple[int, float | None, bool]:
        """Send the request and read one response: (status, first-event time, keep-alive)."""
        if self.sock is None:
            self.sock = await self.connect()
        view = memoryview(self.spec.request)
        while view:
            view = view[await self.sock.send(view) :]
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            await self.recv()
        head = bytes(self.buf[:end]).lower()
        status = int(head[9:12])
        del self.buf[: end + 4]
        keep_alive = b"\r\nconnection: close" not in head
        first: list[float | None] = [None]
        if b"\r\ntransfer-encoding: chunked" in head:
            tail = await self.chunked(start, first)
        elif (i := head.find(b"\r\ncontent-length:")) >= 0:
            eol = head.find(b"\r\n", i + 2)
            length = int(head[i + 17 : eol if eol >= 0 else len(head)])
            tail = await self.fixed(length, start, first)
        else:
            tail = await self.until_close(start, first)
            keep_alive = False
        if 200 <= status < 300 and self.spec.expect is not None and self.spec.expect not in tail:
            status = -status  # framed fine but the content is not what we asked for
        return status, first[0], keep_alive

    def note_first(self, start: float, first: list[float | None], region: bytes) -> None:
        if first[0] is None and self.spec.stream and b"data:" in region:
            first[0] = time.perf_counter() - start

    async def fixed(self, length: int, start: float, first: list[float | None]) -> bytes:
        while len(self.buf) < length:
            if self.spec.stream and first[0] is None:
                self.note_first(start, first, bytes(self.buf))
            await self.recv()
        body = bytes(self.buf[:length])
        self.note_first(start, first, body)
        del self.buf[:length]
        return body[-512:]

    async def until_close(self, start: float, first: list[float | None]) -> bytes:
        try:
            while True:
                if self.spec.stream and first[0] is None:
                    self.note_first(start, first, bytes(self.buf[-RECV:]))
                await self.recv()
        except _Failed:
            body = bytes(self.buf[-512:])
            self.close()
            return body

    async def chunked(self, start: float, first: list[float | None]) -> bytes:
        """Walk chunk headers (no copies of chunk data) until the last chunk."""
        buf, pos = self.buf, 0
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                await self.recv()
                continue
            size = _chunk_size(buf, pos, eol)
            if size == 0:
                while (done := buf.find(b"\r\n\r\n", eol)) < 0:
                    await self.recv()
                tail = bytes(buf[max(0, eol - 512) : eol])
                del buf[: done + 4]
                return tail
            stop = eol + 2 + size
            while len(buf) < stop + 2:
                await self.recv()
            if first[0] is None and self.spec.stream and buf.find(b"data:", eol + 2, stop) >= 0:
                first[0] = time.perf_counter() - start
            pos = stop + 2
            if pos > RECV:  # keep the buffer short on long streams, and 512 bytes for `expect`
                del buf[: pos - 512]
                pos = 512


def _chunk_size(buf: bytearray, pos: int, eol: int) -> int:
    line = buf[pos:eol]
    semi = line.find(b";")  # chunk extensions are legal, if rare
    return int(line[:semi] if semi >= 0 else line, 16)


async def _client_loop(spec: LoadSpec, tickets: list[int], result: LoadResult) -> None:
    client = _Client(spec)
    try:
        while tickets[0] > 0:
            tickets[0] -= 1
            start = time.perf_counter()
            try:
                status, first, keep_alive = await client.one(start)
            except (_Failed, OSError, ValueError):
                result.failed += 1
                client.close()
                await trio.sleep(0)  # a refused connect must not spin without yielding
                continue
            elapsed = time.perf_counter() - start
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                result.completed += 1
                result.latencies.append(elapsed)
                if first is not None:
                    result.first_events.append(first)
            else:
                result.failed += 1
            if not keep_alive:
                client.close()
    finally:
        client.close()


async def run_load(spec: LoadSpec) -> LoadResult:
    """Run `spec.clients` connections until `spec.requests` are done or time runs out."""
    result = LoadResult()
    tickets = [spec.requests]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with trio.move_on_after(spec.duration) as scope:
        async with trio.open_nursery() as nursery:
            for _ in range(spec.clients):
                nursery.start_soon(_client_loop, spec, tickets, result)
    result.wall = time.perf_counter() - wall0
    result.cpu = time.process_time() - cpu0
    result.timed_out = scope.cancelled_caught
    return result


def summary(result: LoadResult) -> str:
    ms = 1000.0
    lines = [
        f"completed {result.completed}  failed {result.failed}  statuses {result.statuses}",
        f"wall {result.wall:.2f} s  req/s {result.rps:,.0f}  "
        f"loadgen cpu share {result.cpu_share:.2f}" + ("  (timed out)" if result.timed_out else ""),
        f"latency p50 {result.latency(50) * ms:.3f} ms  p99 {result.latency(99) * ms:.3f} ms",
    ]
    if result.first_events:
        lines.append(
            f"first event p50 {result.first_event(50) * ms:.3f} ms  "
            f"p99 {result.first_event(99) * ms:.3f} ms"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    p.add_argument("--port", type=int, required=True, help="server on 127.0.0.1")
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--duration", type=float, default=60.0, help="hard cap, seconds")
    p.add_argument("--stream", action="store_true")
    p.add_argument("--kind", choices=[k.value for k in Kind], default=Kind.ANTHROPIC.value)
    p.add_argument("--model", default=None, help="e.g. claude-x~e20~d100 for fake knobs")
    args = p.parse_args(argv)
    request = build_request(
        Kind(args.kind), host=HOST, port=args.port, model=args.model, stream=args.stream
    )
    spec = LoadSpec(
        port=args.port,
        request=request,
        clients=args.clients,
        requests=args.requests,
        duration=args.duration,
        stream=args.stream,
    )
    print(summary(trio.run(run_load, spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
