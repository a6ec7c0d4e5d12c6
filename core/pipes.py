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
from core.sse import SSEEvent, SSEParser


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


def _next_event_end(chunk: bytes, start: int) -> int:
    """Index just past the next blank line (LF LF or CRLF CRLF) from start, else the end.
    The CRLF search stops where an LF LF was found: a chunk may hold a whole stream, and
    scanning all of it once per event cost more than parsing the event."""
    lf = chunk.find(b"\n\n", start)
    crlf = chunk.find(b"\r\n\r\n", start, len(chunk) if lf < 0 else lf + 1)
    if crlf >= 0:
        return crlf + 4
    return len(chunk) if lf < 0 else lf + 2


# What an `event:` line's raw name means, per dialect, shared by all streams: the same
# dozen names come in every stream. Names come from upstreams, so only so many are kept.
_NAMED: dict[str, dict[bytes, EventKind | None]] = {}
_NAMES_KEPT = 256


class PassthroughPipe:
    def __init__(self, spec: DialectSpec) -> None:
        self._spec = spec
        self._parser: SSEParser | None = SSEParser()
        self._scanner = spec.stream_scanner()
        self._by_name = spec.classifies_by_name
        self._named = _NAMED.setdefault(spec.dialect, {})
        # Chunks the scanner has not seen yet: the preflight's, scanned once the stream is
        # committed and its start went out (the scan is not on the first event's latency).
        self._unscanned: list[bytes] | None = []
        self._result: tuple[Usage, bool] | None = None  # the scanner's verdict at close()
        self.content_started = False
        self.completed = False
        self.error_reason: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        if self._parser is not None:
            assert self._unscanned is not None
            self._unscanned.append(chunk)
            self._preflight(chunk)
            return chunk
        if self._unscanned is not None:
            self._scan_held()
        self._scanner.feed(chunk)
        return chunk

    def _scan_held(self) -> None:
        for held in self._unscanned or ():
            self._scanner.feed(held)
        self._unscanned = None

    def _preflight(self, chunk: bytes) -> None:
        """Parse event by event only until the first content or error event: a chunk can
        hold a whole stream, and parsing what follows the commit point is wasted work."""
        parser = self._parser
        assert parser is not None
        start, size = 0, len(chunk)
        while start < size and parser is not None:
            cut = _next_event_end(chunk, start)
            kind = self._kind_by_name(chunk, start, cut)
            if kind is not None:
                if self._note(kind):
                    self._parser = parser = None
            else:
                for event in parser.feed(chunk[start:cut]):
                    if self._classify(event):
                        self._parser = parser = None
                        break
            start = cut

    def _kind_by_name(self, chunk: bytes, start: int, cut: int) -> EventKind | None:
        """A whole event that opens with its `event:` line, classified by the name alone
        when the dialect allows (not errors: their reason is in the data); else None."""
        if not self._by_name or not chunk.startswith(b"event:", start):
            return None
        whole = chunk.endswith(b"\n\n", start, cut) or chunk.endswith(b"\r\n\r\n", start, cut)
        if not whole or not self._parser_between_events():
            return None  # the event goes on in the next chunk: the parser keeps it
        if chunk.find(b"\ndata", start, cut) < 0:
            return None  # no data line: the parser would not dispatch it at all
        raw = chunk[start + 6 : chunk.find(b"\n", start)]
        named = self._named
        if raw in named:
            return named[raw]
        kind = self._name_kind(raw)
        if len(named) < _NAMES_KEPT:
            named[raw] = kind
        return kind

    def _name_kind(self, raw: bytes) -> EventKind | None:
        name = raw.removeprefix(b" ").removesuffix(b"\r")
        if not name.isascii():
            return None
        kind = self._spec.classify_event(SSEEvent(data="", event=name.decode("ascii")))
        return None if kind is EventKind.ERROR else kind

    def _parser_between_events(self) -> bool:
        return self._parser is not None and self._parser.between_events

    def _classify(self, event: SSEEvent) -> bool:
        """Note what the event means for the preflight; True once the verdict is in."""
        kind = self._spec.classify_event(event)
        if kind is EventKind.ERROR:
            self.error_reason = self._spec.error_reason(event)
            return True
        return self._note(kind)

    def _note(self, kind: EventKind) -> bool:
        if kind is EventKind.END:
            self.completed = True
        if kind is EventKind.CONTENT or kind is EventKind.END:
            self.content_started = True  # committed: from here on only the scanner runs
            return True
        return False

    def close(self) -> bytes:
        # The scan of the kept head and tail runs once per stream (it parses JSON); usage()
        # after close() reuses it.
        self._scan_held()
        self._result = self._scanner.result()
        self.completed = self.completed or self._result[1]
        if self.completed:
            return b""
        return self._spec.error_event("upstream", "upstream stream ended before completion")

    def fail(self, kind: str, message: str) -> bytes:
        return self._spec.error_event(kind, message)

    def usage(self) -> Usage:
        if self._result is not None:
            return self._result[0]
        self._scan_held()
        return self._scanner.result()[0]
