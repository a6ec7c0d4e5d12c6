"""Free-form ("custom") tool calls restored for the client that defined the tools.

Codex defines `apply_patch` as a Responses `custom` tool: its input is raw text, not a
JSON object. Anthropic and Gemini have no such tools, so requests to them carry a
function with one string parameter `input`, and their answers call it with
`{"input": "*** Begin Patch..."}`. Response translation alone cannot tell that call from
an ordinary function call; the proxy knows the client's request, so it passes the names
of the client's free-form tools and the calls to them become custom calls again, with
the raw text as their input.

Rules:
- Only calls of kind "function" to a listed name change (a Responses or Chat upstream
  already answers with custom calls).
- The raw input is the `input` string of the arguments object. Arguments of another shape
  (the model ignored the schema, or max tokens cut them) are passed through as the input
  text unchanged, so the client reports the bad input to the model instead of the call
  vanishing.
- Streams: the `input` string is decoded incrementally as argument fragments arrive,
  complete JSON escapes only (a `\\uXXXX` surrogate pair is held until both halves are
  in); arguments that do not start `{"input": "` are buffered and decided at BlockStop.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

from core.translate import canonical as c

# `{"input": "` with any JSON whitespace: the start of the one shape streamed decoding takes.
_PREFIX = re.compile(r'\s*\{\s*"input"\s*:\s*"')
_COMPACT_PREFIX = '{"input":"'
_WS = re.compile(r"\s+")
# The longest run of whole string characters and whole escapes.
_RUN = re.compile(r'(?:[^"\\]+|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*')
_HIGH_SURROGATE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}$")


def input_text(arguments: str) -> str:
    """The raw input a free-form call carried as function arguments (module rules)."""
    try:
        value = json.loads(arguments, strict=False)  # raw control characters are tolerated
    except ValueError:
        return arguments
    if isinstance(value, dict) and isinstance(value.get("input"), str):
        return str(value["input"])
    return arguments


def restore_calls(resp: c.Response, names: frozenset[str]) -> c.Response:
    """Calls to the client's free-form tools become custom calls with raw input."""
    if not names:
        return resp
    parts = tuple(
        replace(p, kind="custom", arguments=input_text(p.arguments))
        if isinstance(p, c.ToolCall) and p.kind == "function" and p.name in names
        else p
        for p in resp.parts
    )
    return replace(resp, parts=parts)


class InputDecoder:
    """Streamed JSON arguments `{"input": "..."}` -> the input text, piece by piece."""

    __slots__ = ("_buffer", "_mode")

    def __init__(self) -> None:
        self._buffer = ""
        self._mode = "prefix"  # prefix -> string -> tail, or prefix -> whole

    def feed(self, fragment: str) -> str:
        self._buffer += fragment
        if self._mode == "prefix":
            self._mode = self._prefix()
        if self._mode == "string":
            return self._string()
        if self._mode == "tail":
            self._buffer = ""  # the rest of the object after the input string
        return ""

    def close(self) -> str:
        """What is left: the undecided arguments as a whole, else nothing."""
        rest, self._buffer = self._buffer, ""
        if self._mode in ("prefix", "whole"):
            return input_text(rest) if rest.strip() else ""
        return ""  # a string cut short (max tokens): its whole pieces were already sent

    def _prefix(self) -> str:
        compact = _WS.sub("", self._buffer)
        if compact.startswith(_COMPACT_PREFIX):
            m = _PREFIX.match(self._buffer)
            if m is None:  # whitespace inside the key: not the simple shape
                return "whole"
            self._buffer = self._buffer[m.end() :]
            return "string"
        return "prefix" if _COMPACT_PREFIX.startswith(compact) else "whole"

    def _string(self) -> str:
        end = _RUN.match(self._buffer).end()  # type: ignore[union-attr]  # matches ""
        closed = self._buffer[end : end + 1] == '"'
        if not closed and _HIGH_SURROGATE.search(self._buffer, 0, end):
            end -= 6  # hold a high surrogate until its low half arrives
        run, self._buffer = self._buffer[:end], self._buffer[end:]
        if closed:
            self._mode, self._buffer = "tail", ""
        return json.loads(f'"{run}"', strict=False) if run else ""


class StreamRestorer:
    """Canonical stream events in, the same with free-form calls restored (module rules)."""

    def __init__(self, names: frozenset[str]) -> None:
        self._names = names
        self._open: dict[int, InputDecoder] = {}  # block index -> decoder of its arguments

    def claims(self, index: int) -> bool:
        """The block's argument fragments are rewritten here (a free-form call's)."""
        return index in self._open

    def feed(self, events: list[c.StreamEvent]) -> list[c.StreamEvent]:
        if not self._names:
            return events
        return [out for event in events for out in self._one(event)]

    def _one(self, event: c.StreamEvent) -> list[c.StreamEvent]:
        if isinstance(event, c.BlockStart):
            if event.tool_kind == "function" and event.tool_name in self._names:
                self._open[event.index] = InputDecoder()
                return [replace(event, tool_kind="custom")]
            return [event]
        if isinstance(event, c.Finish | c.End):
            return [*self._flush(), event]  # a decoder that closes blocks late: keep the input
        decoder = self._open.get(getattr(event, "index", -1))
        if decoder is None:
            return [event]
        if isinstance(event, c.ToolArgsDelta):
            text = decoder.feed(event.partial_json)
            return [replace(event, partial_json=text)] if text else []
        if isinstance(event, c.BlockStop):
            del self._open[event.index]
            text = decoder.close()
            delta = [c.ToolArgsDelta(index=event.index, partial_json=text)] if text else []
            return [*delta, event]
        return [event]

    def _flush(self) -> list[c.StreamEvent]:
        pending = [(i, d.close()) for i, d in sorted(self._open.items())]
        self._open.clear()
        return [c.ToolArgsDelta(index=i, partial_json=text) for i, text in pending if text]
