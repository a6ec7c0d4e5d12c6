"""The floor: the least a trio relay can cost, for the bench's "proxy vs floor" column.

Owns: `python -m bench.floor --port P --upstream-port U` and `serve_floor()` for in-process
use. It accepts a client connection, opens one connection to the upstream for it, and
copies bytes both ways with trio streams until either side closes. No HTTP parsing, no
pool, no logging, no timers per read: whatever it costs per request or per relayed event
is the runtime's price (trio's scheduler, the socket calls, the kernel), which the proxy
pays too before its own code does anything.

Rules:
- Keep it minimal: adding work here hides the proxy's own cost in the floor. The proxy
  does strictly more (parse, route, pool, account), so nothing here may be skipped that a
  correct byte relay needs.
- One upstream connection per client connection, for its whole life: HTTP keep-alive
  works because the bytes are piped unchanged, in order, both ways.
- Bounded: a connection lives at most `MAX_LIFETIME` seconds (one deadline for the whole
  connection, not one per read, so it adds nothing per event); either side's EOF or error
  ends both directions.
- Listens on 127.0.0.1 only; prints `READY port=P` (flushed) when it listens; exits on
  SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys

import trio

from bench.fake_upstream import make_listener

HOST = "127.0.0.1"
CHUNK = 65536  # the proxy's read size too: one read takes whatever one segment carried
MAX_LIFETIME = 3600.0  # seconds; longer than any bench phase


async def _pipe(src: trio.SocketStream, dst: trio.SocketStream, done: trio.CancelScope) -> None:
    """Copy until EOF or a broken socket, then end the other direction too."""
    try:
        while data := await src.receive_some(CHUNK):
            await dst.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    finally:
        done.cancel()


async def relay(client: trio.SocketStream, upstream_port: int) -> None:
    """One client connection: one upstream connection, bytes copied both ways."""
    async with client:
        try:
            upstream = await trio.open_tcp_stream(HOST, upstream_port)
        except OSError:
            return  # the client sees the close, as it would a proxy's 502
        async with upstream:
            with trio.move_on_after(MAX_LIFETIME):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_pipe, client, upstream, nursery.cancel_scope)
                    nursery.start_soon(_pipe, upstream, client, nursery.cancel_scope)


async def serve_floor(
    listener: socket.socket,
    upstream_port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Relay every connection on `listener` to 127.0.0.1:`upstream_port` until cancelled."""
    lsock = trio.SocketListener(trio.socket.from_stdlib_socket(listener))
    port = int(listener.getsockname()[1])

    async def handler(stream: trio.SocketStream) -> None:
        await relay(stream, upstream_port)

    async with trio.open_nursery() as nursery:
        # serve_listeners backs off on EMFILE by itself; accepted streams get TCP_NODELAY.
        await nursery.start(trio.serve_listeners, handler, [lsock])
        task_status.started(port)


async def _serve_until_signalled(listener: socket.socket, upstream_port: int) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_floor, listener, upstream_port)
            print(f"READY port={port}", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                return


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    p.add_argument("--upstream-port", type=int, required=True, help="upstream on 127.0.0.1")
    args = p.parse_args(argv)
    listener = make_listener(args.port)
    with contextlib.suppress(KeyboardInterrupt):  # SIGINT before the receiver is up
        trio.run(_serve_until_signalled, listener, args.upstream_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
