"""A fast fake LLM upstream for all four dialects, on raw trio sockets.

Owns: `python -m bench.fake_upstream --port P [--ttfb-ms N] [--events N]
[--event-delay-ms N] [--fault KIND[:SHARE]] [--workers N]`, and `serve()` for in-process use.

Rules:
- It must never be the bottleneck: minimal HTTP/1.1 parsing (keep-alive, Content-Length or
  chunked request bodies), responses pre-serialised per (dialect, events) in
  bench/payloads.py, one `send` per response when nothing is paced.
- Per-request knobs ride in the model name, the one field every proxy forwards:
  `claude-x~e20~d100~t5` asks for 20 deltas, 100 ms between them and a 5 ms first byte.
- Faults are chosen deterministically (an accumulator per fault), so a share of 0.1 fails
  exactly every tenth request: status 429/500/529, an early close, or an error event.
- On start it prints `READY port=P` on stdout (flushed), so a parent can wait for it.
- Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from enum import StrEnum

import trio

from bench.payloads import (
    Kind,
    StreamScript,
    error_body,
    error_event,
    gemini_json_array,
    json_body,
    stream_script,
)

HOST = "127.0.0.1"
MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
MAX_EVENTS = 100_000
IDLE_TIMEOUT = 120.0  # seconds a keep-alive connection may sit idle

_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
_MODEL = re.compile(rb'"model"\s*:\s*"([^"]{0,200})"')
_KNOB = re.compile(r"~([edt])(\d{1,6})")
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)")
_STATUS_TEXT = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


class FaultKind(StrEnum):
    S429 = "429"
    S500 = "500"
    S529 = "529"
    CLOSE = "close"  # non-stream: close before answering; stream: close after half the deltas
    ERROR_EVENT = "error-event"  # stream: the dialect's error event after half the deltas


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    kind: FaultKind
    share: float  # 0 < share <= 1

    @staticmethod
    def parse(text: str) -> Fault:
        kind, _, share = text.partition(":")
        value = float(share) if share else 1.0
        if not 0.0 < value <= 1.0:
            raise ValueError(f"fault share must be in (0, 1], got {share!r}")
        return Fault(kind=FaultKind(kind), share=value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    ttfb_ms: float = 0.0
    events: int = 50
    event_delay_ms: float = 0.0
    faults: tuple[Fault, ...] = ()


@dataclass(slots=True, kw_only=True)
class Counters:
    """What the fake served; tests and the bench read it."""

    requests: int = 0
    faults: int = 0
    connections: int = 0
    _acc: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What one request gets: dialect, stream shape, and pacing."""

    kind: Kind
    stream: bool
    events: int
    delay: float  # seconds between deltas
    ttfb: float  # seconds before the first byte
    sse: bool = True  # Gemini streams without alt=sse answer a JSON array


# ---------------------------------------------------------------- pre-serialised responses

_JSON_HEAD = (
    "HTTP/1.1 {status} {text}\r\ncontent-type: application/json\r\n"
    "content-length: {length}\r\n{extra}\r\n"
)
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data) if data else b""


def json_response(body: bytes, status: int = 200, extra: str = "") -> bytes:
    text = _STATUS_TEXT.get(status, "Overloaded" if status == 529 else "Error")
    head = _JSON_HEAD.format(status=status, text=text, length=len(body), extra=extra)
    return head.encode() + body


_cache: dict[tuple[Kind, int, str], bytes] = {}


def cached_json(kind: Kind, events: int) -> bytes:
    key = (kind, events, "json")
    if key not in _cache:
        _cache[key] = json_response(json_body(kind, events))
    return _cache[key]


def cached_stream(kind: Kind, events: int) -> bytes:
    """The whole SSE response (head, one chunk per event, terminator) for unpaced streams."""
    key = (kind, events, "sse")
    if key not in _cache:
        s = stream_script(kind, events)
        body = _chunk(s.prelude) + b"".join(_chunk(d) for d in s.deltas) + _chunk(s.tail)
        _cache[key] = _SSE_HEAD + body + b"0\r\n\r\n"
    return _cache[key]


# ---------------------------------------------------------------- request handling


def plan_request(path: str, body: bytes, settings: Settings) -> Plan | None:
    """Which dialect and shape `path` and `body` ask for; None for an unknown path."""
    route, _, query = path.partition("?")
    if route.startswith("/v1beta/models/"):
        model, _, method = route[len("/v1beta/models/") :].partition(":")
        if method not in ("generateContent", "streamGenerateContent"):
            return None
        stream = method == "streamGenerateContent"
        return _plan(Kind.GEMINI, stream, model, settings, sse="alt=sse" in query)
    kind = {
        "/v1/messages": Kind.ANTHROPIC,
        "/v1/chat/completions": Kind.OPENAI_CHAT,
        "/v1/responses": Kind.OPENAI_RESPONSES,
    }.get(route)
    if kind is None:
        return None
    m = _MODEL.search(body)
    model = m.group(1).decode("utf-8", "replace") if m else ""
    return _plan(kind, _STREAM_TRUE.search(body) is not None, model, settings)


def _plan(kind: Kind, stream: bool, model: str, s: Settings, *, sse: bool = True) -> Plan:
    knobs = dict(_KNOB.findall(model)) if "~" in model else {}
    events = min(MAX_EVENTS, max(1, int(knobs.get("e", s.events))))
    delay = float(knobs.get("d", s.event_delay_ms)) / 1000.0
    ttfb = float(knobs.get("t", s.ttfb_ms)) / 1000.0
    return Plan(kind=kind, stream=stream, events=events, delay=delay, ttfb=ttfb, sse=sse)


def pick_fault(settings: Settings, counters: Counters) -> FaultKind | None:
    """Deterministic shares: each fault accrues its share and fires when it reaches 1."""
    if not settings.faults:
        return None
    if len(counters._acc) != len(settings.faults):
        counters._acc[:] = [0.0] * len(settings.faults)
    chosen = None
    for i, fault in enumerate(settings.faults):
        counters._acc[i] += fault.share
        if chosen is None and counters._acc[i] >= 1.0 - 1e-9:
            counters._acc[i] -= 1.0
            chosen = fault.kind
    return chosen


async def send_all(sock: trio.socket.SocketType, data: bytes) -> None:
    view = memoryview(data)
    while view:
        sent = await sock.send(view)
        view = view[sent:]


class _Closed(Exception):
    """The peer went away, or asked us to close after this response."""


class Connection:
    """One keep-alive client connection: read a request, answer it, repeat."""

    def __init__(self, sock: trio.socket.SocketType, settings: Settings, counters: Counters):
        self.sock = sock
        self.settings = settings
        self.counters = counters
        self.buf = bytearray()

    async def recv_more(self) -> None:
        with trio.move_on_after(IDLE_TIMEOUT):
            data = await self.sock.recv(65536)
            if not data:
                raise _Closed
            self.buf += data
            return
        raise _Closed

    async def read_request(self) -> tuple[str, bytes, bool]:
        """(target, body, keep_alive) of the next request."""
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            if len(self.buf) > MAX_HEAD:
                raise _Closed
            await self.recv_more()
        raw = bytes(self.buf[:end])
        del self.buf[: end + 4]
        line_end = raw.find(b"\r\n")
        # The target keeps its case: Gemini model names and query strings are case-sensitive.
        request_line = raw[: line_end if line_end >= 0 else len(raw)].split()
        if len(request_line) != 3:
            raise _Closed
        head = raw.lower()
        keep_alive = b"\r\nconnection: close" not in head and request_line[2] == b"HTTP/1.1"
        if b"\r\nexpect: 100-continue" in head:
            await send_all(self.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
        if b"\r\ntransfer-encoding: chunked" in head:
            body = await self.read_chunked()
        else:
            m = _CONTENT_LENGTH.search(head)
            body = await self.read_exactly(int(m.group(1)) if m else 0)
        return request_line[1].decode("latin-1"), body, keep_alive

    async def read_exactly(self, n: int) -> bytes:
        if n > MAX_BODY:
            raise _Closed
        while len(self.buf) < n:
            await self.recv_more()
        body = bytes(self.buf[:n])
        del self.buf[:n]
        return body

    async def read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            while (eol := self.buf.find(b"\r\n")) < 0:
                await self.recv_more()
            size = int(bytes(self.buf[:eol]).split(b";")[0], 16)
            del self.buf[: eol + 2]
            if size == 0:
                while self.buf.find(b"\r\n") < 0:
                    await self.recv_more()
                del self.buf[: self.buf.find(b"\r\n") + 2]  # no trailers expected
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise _Closed
            parts.append(await self.read_exactly(size))
            await self.read_exactly(2)

    async def run(self) -> None:
        self.counters.connections += 1
        try:
            while True:
                target, body, keep_alive = await self.read_request()
                await self.answer(target, body)
                if not keep_alive:
                    return
        except (_Closed, OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            self.sock.close()

    async def answer(self, target: str, body: bytes) -> None:
        self.counters.requests += 1
        if target == "/health":
            await send_all(self.sock, json_response(b'{"status":"ok"}'))
            return
        if target == "/v1/messages/count_tokens":
            await send_all(self.sock, json_response(b'{"input_tokens":25}'))
            return
        plan = plan_request(target, body, self.settings)
        if plan is None:
            await send_all(self.sock, json_response(b'{"error":"not found"}', 404))
            return
        fault = pick_fault(self.settings, self.counters)
        if fault is not None:
            self.counters.faults += 1
        if plan.ttfb:
            await trio.sleep(plan.ttfb)
        if fault in (FaultKind.S429, FaultKind.S500, FaultKind.S529):
            status = int(fault)
            extra = "retry-after: 1\r\n" if status == 429 else ""
            await send_all(self.sock, json_response(error_body(plan.kind, status), status, extra))
            return
        if not plan.stream or not plan.sse:
            if fault is FaultKind.CLOSE:
                raise _Closed
            if plan.stream:  # Gemini without alt=sse
                body_bytes = json_response(gemini_json_array(plan.events))
                await send_all(self.sock, body_bytes)
            else:
                await send_all(self.sock, cached_json(plan.kind, plan.events))
            return
        await self.stream(plan, fault)

    async def stream(self, plan: Plan, fault: FaultKind | None) -> None:
        if fault is None and plan.delay == 0:
            await send_all(self.sock, cached_stream(plan.kind, plan.events))
            return
        script: StreamScript = stream_script(plan.kind, plan.events)
        await send_all(self.sock, _SSE_HEAD + _chunk(script.prelude))
        cut = len(script.deltas) // 2 if fault is not None else len(script.deltas)
        for delta in script.deltas[:cut]:
            if plan.delay:
                await trio.sleep(plan.delay)
            await send_all(self.sock, _chunk(delta))
        if fault is FaultKind.CLOSE:
            raise _Closed
        if fault is FaultKind.ERROR_EVENT:
            await send_all(self.sock, _chunk(error_event(plan.kind)) + b"0\r\n\r\n")
            return
        if plan.delay:
            await trio.sleep(plan.delay)
        await send_all(self.sock, _chunk(script.tail) + b"0\r\n\r\n")


# ---------------------------------------------------------------- serving


def make_listener(port: int, *, reuse_port: bool = False) -> socket.socket:
    """A bound, listening stdlib socket on 127.0.0.1 (port 0 picks a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((HOST, port))
    sock.listen(4096)
    return sock


async def serve(
    listener: socket.socket,
    settings: Settings,
    counters: Counters | None = None,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept and answer connections on `listener` until cancelled; reports the port."""
    counters = counters if counters is not None else Counters()
    lsock = trio.socket.from_stdlib_socket(listener)
    async with trio.open_nursery() as nursery:
        task_status.started(lsock.getsockname()[1])
        while True:
            try:
                conn, _ = await lsock.accept()
            except OSError:
                # EMFILE and friends: back off briefly instead of spinning or dying.
                await trio.sleep(0.01)
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            nursery.start_soon(Connection(conn, settings, counters).run)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.fake_upstream", description=__doc__)
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    p.add_argument("--ttfb-ms", type=float, default=0.0, help="wait before the first byte")
    p.add_argument("--events", type=int, default=50, help="text deltas per answer")
    p.add_argument("--event-delay-ms", type=float, default=0.0, help="pause between deltas")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        type=Fault.parse,
        metavar="KIND[:SHARE]",
        help="429, 500, 529, close or error-event, for SHARE of requests (default 1)",
    )
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _child_argv(args: argparse.Namespace, port: int) -> list[str]:
    argv = [sys.executable, "-m", "bench.fake_upstream", "--port", str(port), "--reuse-port"]
    argv += ["--ttfb-ms", str(args.ttfb_ms), "--events", str(args.events)]
    argv += ["--event-delay-ms", str(args.event_delay_ms)]
    for f in args.fault:
        argv += ["--fault", f"{f.kind}:{f.share}"]
    return argv


def _wait_ready(proc: subprocess.Popen[bytes], deadline: float) -> None:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # children print READY within a second or exit
        if line.startswith(b"READY"):
            return
        if not line:
            break
    raise RuntimeError("a fake upstream worker did not start")


async def _serve_until_signalled(listener: socket.socket, settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT, then return so `main` can reap its workers."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve, listener, settings)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                return


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(
        ttfb_ms=args.ttfb_ms,
        events=args.events,
        event_delay_ms=args.event_delay_ms,
        faults=tuple(args.fault),
    )
    multi = args.workers > 1 or args.reuse_port
    listener = make_listener(args.port, reuse_port=multi)
    port = listener.getsockname()[1]
    children: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(max(0, args.workers - 1)):
            children.append(subprocess.Popen(_child_argv(args, port), stdout=subprocess.PIPE))
            _wait_ready(children[-1], time.monotonic() + 15)
        print(f"READY port={port}", flush=True)
        trio.run(_serve_until_signalled, listener, settings)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
