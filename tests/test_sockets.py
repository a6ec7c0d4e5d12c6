"""core.sockets.receive: one read, with the errors trio's receive_some gives."""

import socket
import struct

import pytest
import trio
import trio.testing

from core.sockets import can_go_direct, receive


async def _pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listener.accept()
    await listener.aclose()
    return client, server  # type: ignore[return-value]


@pytest.mark.parametrize("direct", [True, False])
async def test_reads_what_arrives_then_eof(direct: bool) -> None:
    client, server = await _pair()
    assert can_go_direct(server)
    async with client, server:
        async with trio.open_nursery() as nursery:
            got: list[bytes] = []

            async def read() -> None:
                while data := await receive(server, 65536, direct=direct):
                    got.append(data)

            nursery.start_soon(read)
            await client.send_all(b"hello ")
            await client.send_all(b"world")
            await client.send_eof()
        assert b"".join(got) == b"hello world"


@pytest.mark.parametrize("direct", [True, False])
async def test_a_reset_connection_is_a_broken_resource(direct: bool) -> None:
    client, server = await _pair()
    # SO_LINGER 0: close sends RST, so the peer's read fails with ECONNRESET.
    client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await client.aclose()
    with pytest.raises(trio.BrokenResourceError):
        await receive(server, 65536, direct=direct)
    await server.aclose()


@pytest.mark.parametrize("direct", [True, False])
async def test_closing_while_waiting_is_a_closed_resource(direct: bool) -> None:
    client, server = await _pair()
    async with client:
        errors: list[BaseException] = []

        async def read() -> None:
            try:
                await receive(server, 65536, direct=direct)
            except trio.ClosedResourceError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            await server.aclose()
        assert len(errors) == 1
        with pytest.raises(trio.ClosedResourceError):
            await receive(server, 65536, direct=direct)  # and after it closed


async def test_a_cancelled_wait_reads_nothing() -> None:
    client, server = await _pair()
    async with client, server:
        with trio.move_on_after(0.01) as scope:
            await receive(server, 65536, direct=True)
        assert scope.cancelled_caught
        await client.send_all(b"later")
        assert await receive(server, 65536, direct=True) == b"later"
