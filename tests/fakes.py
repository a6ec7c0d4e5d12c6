"""Real local upstreams for tests: HTTP servers on 127.0.0.1 built on core.server.

A `FakeUpstream` answers from a script: each request pops the next `Reply` (or repeats
the default). Replies are plain data (status, headers, body or stream chunks), and a
streamed reply can wait on trio Events between chunks so a test controls the timing
without sleeps. Every request is recorded for assertions.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from core.config import Config
from core.config_parse import parse_config
from core.http import Request, Response
from core.server import serve


@dataclass
class Reply:
    status: int = 200
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    chunks: list[bytes | trio.Event] | None = None  # an Event item: wait for it
    hang: bool = False  # never answer (timeouts, disconnects)
    on_cancel: trio.Event | None = None  # set when the handler is cancelled
    arrived: trio.Event = field(default_factory=trio.Event)  # set when the request came in


def json_reply(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    hdrs = [(b"content-type", b"application/json")]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Reply(status=status, headers=hdrs, body=json.dumps(payload).encode())


def sse_reply(chunks: list[bytes | trio.Event], status: int = 200) -> Reply:
    return Reply(status=status, headers=[(b"content-type", b"text/event-stream")], chunks=chunks)


class FakeUpstream:
    def __init__(self, default: Reply | None = None) -> None:
        self.script: deque[Reply | Callable[[Request], Reply]] = deque()
        self.default = default or json_reply({"ok": True})
        self.requests: list[Request] = []
        self.url = ""
        self.finished_streams = 0
        self.closed_streams = 0  # streams whose client (the proxy) went away

    def then(self, *replies: Reply | Callable[[Request], Reply]) -> FakeUpstream:
        self.script.extend(replies)
        return self

    async def handler(self, request: Request) -> Response:
        self.requests.append(request)
        item = self.script.popleft() if self.script else self.default
        reply = item(request) if callable(item) else item
        reply.arrived.set()
        if reply.hang:
            try:
                await trio.sleep_forever()
            finally:
                if reply.on_cancel is not None:
                    reply.on_cancel.set()
        if reply.chunks is None:
            return Response(status=reply.status, headers=list(reply.headers), body=reply.body)
        return Response(
            status=reply.status, headers=list(reply.headers), stream=self._stream(reply)
        )

    async def _stream(self, reply: Reply) -> AsyncIterator[bytes]:
        complete = False
        try:
            for item in reply.chunks or []:
                if isinstance(item, trio.Event):
                    await item.wait()
                else:
                    yield item
            complete = True
        finally:
            if complete:
                self.finished_streams += 1
            else:
                self.closed_streams += 1
                if reply.on_cancel is not None:
                    reply.on_cancel.set()


async def start_fake(nursery: trio.Nursery, fake: FakeUpstream | None = None) -> FakeUpstream:
    fake = fake or FakeUpstream()
    info = await nursery.start(partial(serve, fake.handler, host="127.0.0.1", port=0))
    fake.url = info.url
    return fake


def make_config(yaml_text: str, env: dict[str, str] | None = None) -> Config:
    text = yaml_text
    if "logging:" not in text:
        text += '\nlogging: {stdout: false, file: ""}\n'
    return parse_config(text, env or {}, source="test-config.yaml")
