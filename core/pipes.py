"""Stream pipes: what sits between upstream SSE bytes and the client, sans-IO.

A pipe is fed raw upstream chunks and returns the bytes for the client. It also tells the
proxy what the preflight needs: has content started (then the stream may be committed),
did an error event arrive first (then fail over), did the stream finish properly.

- `PassthroughPipe` (same dialect): returns the chunks unchanged; parses SSE only until
  content starts, after that a cheap scanner looks for usage and the end marker.
- `TranslatingPipe` (another dialect): wraps core.translate.streams.StreamTranslator.
- `ArrayFramed` wraps either for a Gemini client that asked the JSON-array stream form.
"""

from __future__ import annotations

from typing import Protocol

from core.dialects.base import DialectSpec, EventKind, Usage
from core.sse import SSEParser


class StreamPipe(Protocol):
    @property
    def content_started(self) -> bool: ...  # a content event was fed: commit the stream
    @property
    def completed(self) -> bool: ...  # the dialect's end marker was seen
    @property
    def error_reason(self) -> str | None: ...  # an error event came before any content

    def feed(self, chunk: bytes) -> bytes: ...
    def close(self) -> bytes: ...
    def fail(self, kind: str, message: str) -> bytes: ...
    def usage(self) -> Usage: ...


class PassthroughPipe:
    def __init__(self, spec: DialectSpec) -> None:
        self._spec = spec
        self._parser: SSEParser | None = SSEParser()
        self._scanner = spec.stream_scanner()
        self.content_started = False
        self.completed = False
        self.error_reason: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        self._scanner.feed(chunk)
        if self._parser is not None:
            self._preflight(chunk)
        return chunk

    def _preflight(self, chunk: bytes) -> None:
        assert self._parser is not None
        for event in self._parser.feed(chunk):
            kind = self._spec.classify_event(event)
            if kind is EventKind.ERROR:
                self.error_reason = self._spec.error_reason(event)
                return
            if kind is EventKind.END:
                self.completed = True
            if kind is EventKind.CONTENT or kind is EventKind.END:
                self.content_started = True
                self._parser = None  # committed: from here on only the cheap scanner runs
                return

    def close(self) -> bytes:
        _, completed = self._scanner.result()
        self.completed = self.completed or completed
        if self.completed:
            return b""
        return self._spec.error_event("upstream", "upstream stream ended before completion")

    def fail(self, kind: str, message: str) -> bytes:
        return self._spec.error_event(kind, message)

    def usage(self) -> Usage:
        return self._scanner.result()[0]
