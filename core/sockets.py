"""Reading and writing a trio socket without trio's per-call overhead.

`trio.SocketStream.send_all` yields to the scheduler after every send: a full pass per
response, per upstream request and per stream chunk, on the latency path. On POSIX a plain
socket is written straight with `os.write` after a cancellation check; only a partial write
(the kernel buffer is full) goes through `send_all`, which waits for room. TLS streams and
other platforms always use `send_all`. Callers that stream many chunks yield on their own
now and then (the server every few chunks) so other tasks still run.

`receive` waits for readability first and then reads once: `receive_some` tries a read
first, which on the latency path (we just sent, nothing is there yet) is a failed syscall
and a raised BlockingIOError per read. Both end in one scheduler pass when data is there.
"""

from __future__ import annotations

import os

import trio


def can_go_direct(stream: trio.abc.Stream) -> bool:
    """A plain socket on POSIX: `send_all` and `receive` may use os.write and os.read on it
    (they fail on a Windows socket handle)."""
    return isinstance(stream, trio.SocketStream) and os.name == "posix"


async def send_all(stream: trio.abc.Stream, data: bytes, *, direct: bool) -> None:
    """Send all of `data`; `direct` only if `can_go_direct(stream)`."""
    if direct:
        assert isinstance(stream, trio.SocketStream)
        await trio.lowlevel.checkpoint_if_cancelled()
        fd = stream.socket.fileno()  # afresh: -1 once closed, never a reused fd
        if fd < 0:
            raise trio.ClosedResourceError("connection closed")
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    await stream.send_all(data)


async def receive(stream: trio.abc.Stream, size: int, *, direct: bool) -> bytes | bytearray:
    """One read of up to `size` bytes (b"" at EOF), as `receive_some`; `direct` only if
    `can_go_direct(stream)`. Errors are trio's: Closed/BrokenResourceError."""
    if not direct:
        return await stream.receive_some(size)
    assert isinstance(stream, trio.SocketStream)
    sock = stream.socket
    while True:
        if sock.fileno() < 0:
            raise trio.ClosedResourceError("connection closed")
        await trio.lowlevel.wait_readable(sock)  # the cancellation point; closing wakes it
        fd = sock.fileno()
        if fd < 0:
            raise trio.ClosedResourceError("connection closed")
        try:
            return os.read(fd, size)
        except BlockingIOError:
            continue  # woken without data (spurious): wait again
        except OSError as exc:
            raise trio.BrokenResourceError(f"socket read failed: {exc}") from exc
