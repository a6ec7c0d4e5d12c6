"""Incremental Server-Sent Events parsing and serialising, sans-IO.

`SSEParser.feed(bytes) -> list[SSEEvent]` accepts any split of the byte stream (an event or
a UTF-8 character may straddle chunks) and yields each event once its blank line arrives;
`close()` returns a last event left without its blank line (a truncated stream). Lines may
end in CRLF, LF or CR. Comments (`:` lines) are dropped. Per the spec, an event with no
`data` line is not dispatched; `event` defaults to None (the spec's "message").
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class SSEEvent:
    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None


class SSEParser:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # text after the last complete line
        self._cr_at_end = False  # the previous chunk ended in '\r' (a CRLF may be split)
        self._reset_fields()

    def _reset_fields(self) -> None:
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None

    @property
    def between_events(self) -> bool:
        """Nothing of an unfinished event is held: the next byte starts a new line."""
        return (
            not self._pending
            and not self._cr_at_end
            and not self._data
            and (self._event is None and self._id is None and self._retry is None)
        )

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if self._cr_at_end and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across chunks
        self._cr_at_end = text.endswith("\r")
        return self._consume(self._pending + text)

    def close(self) -> list[SSEEvent]:
        text = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        events: list[SSEEvent] = []
        if text:
            self._line(text, events)
        if self._data:  # a final event whose blank line never came
            events.append(self._build())
        self._reset_fields()
        return events

    def _consume(self, text: str) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        self._pending = lines.pop()
        for line in lines:
            self._line(line, events)
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(self._build())
            self._reset_fields()
            return
        if line[0] == ":":
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)

    def _build(self) -> SSEEvent:
        return SSEEvent(
            data="\n".join(self._data), event=self._event, id=self._id, retry=self._retry
        )


def encode_event(data: str, event: str | None = None) -> bytes:
    """One SSE event as bytes (`event:` line first when given)."""
    lines = data.split("\n")
    head = f"event: {event}\n" if event is not None else ""
    return (head + "".join(f"data: {line}\n" for line in lines) + "\n").encode()
