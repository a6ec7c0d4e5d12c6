"""Stream translation facade: upstream SSE bytes of one dialect -> client SSE bytes of another.

    bytes ─► SSEParser ─► <src>.Decoder ─► canonical events ─► <dst>.Encoder ─► bytes

Rules:
- Sans-IO: no awaits, no clocks except the default `created` timestamp the OpenAI
  encoders stamp (pass `created` for reproducible output).
- A stream always ends in the client dialect's own terminal grammar: a clean end only
  after the upstream finished properly, otherwise the client's error event (`close()` on
  a truncated stream, `fail()` on a proxy-side failure). After the first terminal output
  the translator is spent and returns b"".
- Same-dialect traffic does not come here: the proxy relays those bytes untouched.
"""

from __future__ import annotations

import json
from typing import Protocol

from core.dialects import Dialect
from core.sse import SSEEvent, SSEParser
from core.translate import (
    stream_anthropic,
    stream_gemini,
    stream_openai_chat,
    stream_openai_responses,
)
from core.translate.canonical import (
    BlockStart,
    End,
    ErrorEvent,
    Finish,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolArgsDelta,
    Usage,
)
from core.translate.custom_tools import StreamRestorer


class Decoder(Protocol):
    def feed(self, event: SSEEvent) -> list[StreamEvent]: ...
    def close(self) -> list[StreamEvent]: ...


class Encoder(Protocol):
    def feed(self, event: StreamEvent) -> bytes: ...


_CONTENT = (BlockStart, TextDelta, ToolArgsDelta, ReasoningDelta)


def decoder(dialect: Dialect) -> Decoder:
    match dialect:
        case Dialect.ANTHROPIC:
            return stream_anthropic.Decoder()
        case Dialect.OPENAI_CHAT:
            return stream_openai_chat.Decoder()
        case Dialect.OPENAI_RESPONSES:
            return stream_openai_responses.Decoder()
        case Dialect.GEMINI:
            return stream_gemini.Decoder()


def encoder(
    dialect: Dialect, *, model: str, include_usage: bool = True, created: int | None = None
) -> Encoder:
    match dialect:
        case Dialect.ANTHROPIC:
            return stream_anthropic.Encoder(model=model)
        case Dialect.OPENAI_CHAT:
            return stream_openai_chat.Encoder(
                model=model, include_usage=include_usage, created=created
            )
        case Dialect.OPENAI_RESPONSES:
            return stream_openai_responses.Encoder(model=model, created=created)
        case Dialect.GEMINI:
            return stream_gemini.Encoder(model=model)


class StreamTranslator:
    """Feed raw upstream bytes (any split); get client bytes back.

    `include_usage` only matters for OpenAI Chat clients (their
    `stream_options.include_usage`); `created` fixes the OpenAI `created` stamps;
    `custom_tools` names the client's free-form tools, whose calls reach it as custom
    calls with raw input (custom_tools.py).
    """

    def __init__(
        self,
        *,
        src: Dialect,
        dst: Dialect,
        client_model: str,
        include_usage: bool = True,
        created: int | None = None,
        custom_tools: frozenset[str] = frozenset(),
    ) -> None:
        self._parser = SSEParser()
        self._decoder = decoder(src)
        self._restorer = StreamRestorer(custom_tools)
        self._encoder = encoder(
            dst, model=client_model, include_usage=include_usage, created=created
        )
        self._usage = Usage()
        self._started_content = False
        self._error: ErrorEvent | None = None
        self._ended = False  # a terminal event (End or ErrorEvent) went to the encoder

    @property
    def usage(self) -> Usage:
        return self._usage

    @property
    def started_content(self) -> bool:
        return self._started_content

    @property
    def error(self) -> ErrorEvent | None:
        return self._error

    @property
    def completed(self) -> bool:
        """The upstream stream reached its proper end (no error)."""
        return self._ended and self._error is None

    def feed(self, chunk: bytes) -> bytes:
        if self._ended:
            return b""
        out = [self._decoded(self._decoder.feed(e)) for e in self._parser.feed(chunk)]
        return b"".join(out)

    def close(self) -> bytes:
        if self._ended:
            return b""
        # An event left without its blank line is a truncated tail unless its data is whole.
        tail = [e for e in self._parser.close() if _complete(e)]
        out = [self._decoded(self._decoder.feed(e)) for e in tail]
        out.append(self._decoded(self._decoder.close()))
        return b"".join(out)

    def fail(self, kind: str, message: str) -> bytes:
        if self._ended:
            return b""
        return self._events([ErrorEvent(kind=kind, message=message)], upstream=False)

    def _decoded(self, events: list[StreamEvent]) -> bytes:
        return self._events(self._restorer.feed(events))

    def _events(self, events: list[StreamEvent], *, upstream: bool = True) -> bytes:
        out = []
        for event in events:
            if self._ended:
                break
            if isinstance(event, _CONTENT):
                self._started_content = True
            elif isinstance(event, Start | Finish) and event.usage is not None:
                self._usage = event.usage
            elif isinstance(event, End):
                self._ended = True
            elif isinstance(event, ErrorEvent):
                self._ended = True
                if upstream and self._error is None:
                    self._error = event
            out.append(self._encoder.feed(event))
        return b"".join(out)


def _complete(event: SSEEvent) -> bool:
    if event.data == "[DONE]":
        return True
    try:
        json.loads(event.data)
    except ValueError:
        return False
    return True


def translator(src: Dialect, dst: Dialect, client_model: str) -> StreamTranslator:
    return StreamTranslator(src=src, dst=dst, client_model=client_model)
