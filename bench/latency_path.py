"""Where one request's time goes at one client: the proxy (or the floor) stamped in place.

Run by hand: `python -m bench.latency_path [--floor] [--stream] [--requests N]`.

The proxy (or the floor relay) runs in this process, pinned like in `bench.run` (first
CPU; the fake upstream and the load generator on the others). Every socket read and write
of the target is stamped; per request the four that carry it give three segments:

- request side: the client's request read -> the upstream request written (our parsing,
  routing, building the upstream request);
- upstream wait: that write -> the upstream's answer read (the fake upstream's work, the
  loopback hops and the wakeups of both cores);
- response side: that read -> the first bytes written to the client.

Medians in microseconds; each stamp costs a Python call itself. On this VM (2026-11-26):
proxy 76 / 188 / 39 us (streams 83 / 222 / 69), floor 3 / 180 / 3 (streams 4 / 222 / 3):
the upstream wait is the same for both, so what the proxy adds beyond the floor at one
client is its two sides, about 115 us (150 us to a stream's first event).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Iterable
from functools import partial
from typing import Any, NamedTuple

import trio

from bench import procs

_now = time.perf_counter_ns


class Stamp(NamedTuple):
    ns: int
    op: str  # "request in", "read", "request out", "write"
    conn: int  # fd or id() of the stream: which socket


def role(op: str, data: bytes) -> str:
    """A read or write carrying a request's first bytes is one of the path's two ends."""
    if data[:5] == b"POST ":
        return "request in" if op == "read" else "request out"
    return op


def segments(stamps: Iterable[Stamp]) -> dict[str, list[float]]:
    """Per request: client request read -> upstream request written -> the next read on that
    upstream socket -> the next write on the client socket. Microseconds."""
    out: dict[str, list[float]] = {"request side": [], "upstream wait": [], "response side": []}
    start: Stamp | None = None
    sent: Stamp | None = None
    answer: Stamp | None = None
    for s in stamps:
        if s.op == "request in":
            start, sent, answer = s, None, None
        elif start is None:
            continue
        elif sent is None:
            if s.op == "request out" and s.conn != start.conn:
                sent = s
        elif answer is None:
            if s.op == "read" and s.conn == sent.conn:
                answer = s
        elif s.op == "write" and s.conn == start.conn:
            out["request side"].append((sent.ns - start.ns) / 1000)
            out["upstream wait"].append((answer.ns - sent.ns) / 1000)
            out["response side"].append((s.ns - answer.ns) / 1000)
            start = None
    return out


def _stamp_proxy_sockets(log: list[Stamp]) -> None:
    """core.sockets does the proxy's socket I/O with os.read/os.write: stamp those."""
    import core.sockets

    class StampedOs:
        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

        @staticmethod
        def read(fd: int, size: int) -> bytes:
            data = os.read(fd, size)
            log.append(Stamp(_now(), role("read", data), fd))
            return data

        @staticmethod
        def write(fd: int, data: bytes) -> int:
            log.append(Stamp(_now(), role("write", data), fd))
            return os.write(fd, data)

    core.sockets.os = StampedOs()  # type: ignore[assignment]


def _stamp_floor_streams(log: list[Stamp]) -> None:
    """The floor does its I/O with trio.SocketStream: stamp receive_some and send_all."""
    receive_some = trio.SocketStream.receive_some
    send_all = trio.SocketStream.send_all

    async def stamped_receive(self: trio.SocketStream, max_bytes: int | None = None) -> bytes:
        data = await receive_some(self, max_bytes)
        log.append(Stamp(_now(), role("read", data), id(self)))
        return data

    async def stamped_send(self: trio.SocketStream, data: bytes) -> None:
        log.append(Stamp(_now(), role("write", bytes(data[:5])), id(self)))
        await send_all(self, data)

    trio.SocketStream.receive_some = stamped_receive  # type: ignore[method-assign]
    trio.SocketStream.send_all = stamped_send  # type: ignore[method-assign]


async def _start_target(nursery: trio.Nursery, args: argparse.Namespace, upstream_port: int) -> int:
    """Start the floor or the proxy (as the headless app runs it) in `nursery`; its port."""
    if args.floor:
        from bench.fake_upstream import make_listener
        from bench.floor import serve_floor

        port: int = await nursery.start(serve_floor, make_listener(0), upstream_port)
        return port
    from core.accesslog import AccessLog
    from core.config_parse import parse_config
    from core.engine import Engine, tune_gc

    url = f"http://{procs.HOST}:{upstream_port}"
    config = parse_config(procs.proxy_config(0, [("fake", "anthropic", url)]), {})
    engine = Engine(config, access_log=AccessLog())
    tune_gc()  # as the headless app does
    info = await nursery.start(partial(engine.run, port=0))
    return int(info.port)


async def _measure(args: argparse.Namespace, log: list[Stamp]) -> dict[str, list[float]]:
    cores = procs.Cores.split()
    if cores.proxy is not None:
        os.sched_setaffinity(0, cores.proxy)
    harness = cores.harness
    pin = None if harness is None else partial(os.sched_setaffinity, 0, harness)
    with procs.workdir() as wd:
        fake = procs.start_fake(wd, harness)
        try:
            async with trio.open_nursery() as nursery:
                port = await _start_target(nursery, args, fake.port)
                load = [sys.executable, "-m", "bench.loadgen", "--port", str(port)]
                load += ["--clients", "1", *(["--stream"] if args.stream else []), "--requests"]
                run = partial(trio.run_process, capture_stdout=True, cwd=procs.REPO, preexec_fn=pin)
                await run([*load, "300"])
                log.clear()  # the warm-up's stamps
                await run([*load, str(args.requests)])
                nursery.cancel_scope.cancel()
        finally:
            fake.stop()
    return segments(log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency_path", description=__doc__)
    parser.add_argument("--floor", action="store_true", help="stamp the floor, not the proxy")
    parser.add_argument("--stream", action="store_true", help="streams (first bytes out)")
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args(argv)
    log: list[Stamp] = []
    if args.floor:
        _stamp_floor_streams(log)
    else:
        _stamp_proxy_sockets(log)
    found = trio.run(_measure, args, log)
    what = ("floor" if args.floor else "proxy") + (", streams" if args.stream else "")
    cells = ", ".join(f"{name} {statistics.median(v):.1f} us" for name, v in found.items() if v)
    print(f"{what}: {len(found['request side'])} requests; {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
