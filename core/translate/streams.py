"""Stream translation facade: upstream SSE bytes of one dialect -> client SSE bytes of another.

    bytes ─► DataSplitter ─► <src>.Decoder ─► canonical events ─► <dst>.Encoder ─► bytes
                                 └─ fast lane: text/argument deltas ─► <dst>.Encoder ─┘

Rules:
- Sans-IO: no awaits, no clocks except the default `created` timestamp the OpenAI
  encoders stamp (pass `created` for reproducible output).
- A stream always ends in the client dialect's own terminal grammar: a clean end only
  after the upstream finished properly, otherwise the client's error event (`close()` on
  a truncated stream, `fail()` on a proxy-side failure). After the first terminal output
  the translator is spent and returns b"".
- Same-dialect traffic does not come here: the proxy relays those bytes untouched.
- Cost: translation is paid per upstream event, so the dominant deltas take the fast lane
  (stream_lane.py) and the translator splits SSE itself (DataSplitter: only the data of
  each event, no per-event objects; decoders never read `event:` lines, the data's own
  `type` is authoritative). bench/stream_translate_bench.py measures every pair.
"""

from __future__ import annotations

from typing import Protocol

from core import fastjson
from core.dialects import Dialect
from core.translate import (
    stream_anthropic,
    stream_gemini,
    stream_openai_chat,
    stream_openai_responses,
)
from core.translate.anthropic_json import JsonAnswerStream
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
from core.translate.stream_lane import Delta


class Decoder(Protocol):
    def fast(self, data: str) -> Delta | None: ...
    def feed(self, data: str) -> list[StreamEvent]: ...
    def close(self) -> list[StreamEvent]: ...


class Encoder(Protocol):
    def feed(self, event: StreamEvent) -> bytes: ...
    def text(self, index: int, text: str) -> bytes: ...
    def args(self, index: int, fragment: str) -> bytes: ...


_CONTENT = (BlockStart, TextDelta, ToolArgsDelta, ReasoningDelta)


class DataSplitter:
    """Upstream SSE bytes -> the data of each complete event, for the translator only.

    The same grammar as core.sse.SSEParser (any split, LF/CRLF/CR line ends, comments,
    multi-line data, no data = no event) without what translation never reads (`event:`,
    `id:`, `retry:`) and without an object per event. Bytes are cut at blank lines before
    decoding, so a UTF-8 character split across chunks is whole by then.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""  # the bytes after the last blank line (LF-normalised but a final CR)

    def feed(self, chunk: bytes) -> list[str]:
        old = len(self._buf)
        buf = self._buf + chunk if old else chunk
        if _CR in buf:
            buf = _lf(buf)
        # Only the new bytes can complete a blank line: the buffer held none.
        end = buf.rfind(b"\n\n", old - 2 if old > 2 else 0)
        if end < 0:
            self._buf = buf
            return []
        self._buf = buf[end + 2 :]
        text = buf[:end].decode("utf-8", "replace")
        if "\n\n" not in text:  # one event: the usual network chunk
            if text.startswith("data: ") and "\n" not in text:
                return [text[6:]]
            data = _data(text)
            return [] if data is None else [data]
        return [data for block in text.split("\n\n") if (data := _data(block)) is not None]

    def close(self) -> list[str]:
        """The data of a last event left without its blank line (a truncated stream)."""
        rest, self._buf = self._buf, b""
        data = _data(rest.replace(b"\r", b"\n").decode("utf-8", "replace"))
        return [] if data is None else [data]


_CR = 13  # `int in bytes` is a plain byte search, far cheaper than `b"\r" in bytes`


def _lf(buf: bytes) -> bytes:
    """CRLF and CR line ends as LF; a final CR is kept, it may be half of a split CRLF."""
    if buf.endswith(b"\r"):
        return buf[:-1].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + b"\r"
    return buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _data(block: str) -> str | None:
    """The data of one event's lines (LF-separated), None when it has no data line."""
    if block.startswith("data: ") and "\n" not in block:
        return block[6:]  # the common shape: one data line
    if block.startswith("event: "):  # the other common shape: `event:` then one data line
        nl = block.find("\n")
        if nl > 0 and block.startswith("data: ", nl + 1) and block.find("\n", nl + 1) < 0:
            return block[nl + 7 :]
    data = []
    for line in block.split("\n"):
        if not line or line[0] == ":":
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    return "\n".join(data) if data else None


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
        self._splitter = DataSplitter()
        self._decoder = decoder(src)
        self._restorer = StreamRestorer(custom_tools)
        # Structured output from an Anthropic upstream arrives as a forced tool call
        # (anthropic_json.JSON_TOOLS); it goes back to the client as the answer's text.
        self._answers = JsonAnswerStream() if src == Dialect.ANTHROPIC else None
        self._encoder = encoder(
            dst, model=client_model, include_usage=include_usage, created=created
        )
        self._fast = self._decoder.fast  # bound once: the fast lane runs per event
        self._text = self._encoder.text
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
        datas = self._splitter.feed(chunk)
        if len(datas) == 1:  # the usual network chunk: one event
            return self._one(datas[0])
        return self._translate(datas)

    def close(self) -> bytes:
        if self._ended:
            return b""
        # An event left without its blank line is a truncated tail unless its data is whole.
        out = self._translate([d for d in self._splitter.close() if _complete(d)])
        if self._ended:
            return out
        return out + self._decoded(self._decoder.close())

    def fail(self, kind: str, message: str) -> bytes:
        if self._ended:
            return b""
        return self._events([ErrorEvent(kind=kind, message=message)], upstream=False)

    def _translate(self, datas: list[str]) -> bytes:
        out = []
        for data in datas:
            if self._ended:
                break  # spent: what follows a terminal event is never sent
            out.append(self._one(data))
        return b"".join(out)

    def _one(self, data: str) -> bytes:
        """One event: a text or argument delta takes the fast lane, the rest the canonical
        path. The hot path of translation: kept flat on purpose."""
        delta = self._fast(data)
        if delta is None:
            return self._decoded(self._decoder.feed(data))
        kind, index, text = delta
        self._started_content = True
        if kind == "text":
            return self._text(index, text)
        if self._restorer.claims(index) or (self._answers and self._answers.claims(index)):
            # a free-form call's or a JSON answer's arguments are rewritten
            return self._decoded([ToolArgsDelta(index=index, partial_json=text)])
        return self._encoder.args(index, text)

    def _decoded(self, events: list[StreamEvent]) -> bytes:
        if self._answers is not None:
            events = self._answers.feed(events)
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


def _complete(data: str) -> bool:
    if data == "[DONE]":
        return True
    try:
        fastjson.loads(data)
    except ValueError:
        return False
    return True


def translator(src: Dialect, dst: Dialect, client_model: str) -> StreamTranslator:
    return StreamTranslator(src=src, dst=dst, client_model=client_model)
