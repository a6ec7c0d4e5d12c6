"""Anthropic Messages stream -> canonical stream events (the Decoder of stream_anthropic.py,
whose docstring holds the grammar and the rules)."""

from __future__ import annotations

from typing import Any

from core import fastjson
from core.translate import common, stream_lane
from core.translate.canonical import (
    BlockStart,
    BlockStop,
    End,
    ErrorEvent,
    Finish,
    ReasoningDelta,
    Start,
    StopReason,
    StreamEvent,
    TextDelta,
    ToolArgsDelta,
    Usage,
)
from core.translate.stream_lane import Delta, DeltaKind, closes, shape, string_at

FAMILY: common.Family = "anthropic"
EARLY_END = "upstream stream ended early"

_STOP_IN: dict[str, StopReason] = {
    "end_turn": StopReason.END_TURN,
    "max_tokens": StopReason.MAX_TOKENS,
    "stop_sequence": StopReason.STOP_SEQUENCE,
    "tool_use": StopReason.TOOL_USE,
    "refusal": StopReason.REFUSAL,
    "pause_turn": StopReason.END_TURN,  # server tools paused; nearest portable meaning
    "model_context_window_exceeded": StopReason.MAX_TOKENS,
}
_ERROR_IN: dict[str, str] = {
    "overloaded_error": "overloaded",
    "rate_limit_error": "rate_limited",
    "invalid_request_error": "invalid_request",
    "authentication_error": "authentication",
    "permission_error": "authentication",
    "not_found_error": "not_found",
    "request_too_large": "request_too_large",
    "timeout_error": "upstream_timeout",
    "api_error": "upstream",
}
# The fast lane's shape (stream_lane.py): a text or input_json delta up to its string.
_DELTA = shape(
    r'\{"type"<:>"content_block_delta"<,>"index"<:>(\d+)<,>"delta"<:>'
    r'\{"type"<:>"(?:(text)_delta"<,>"text"|input_json_delta"<,>"partial_json")<:>"'
)


_dumps = stream_lane.dumps


def _usage_in(raw: dict[str, Any], base: Usage | None) -> Usage:
    """Merge an Anthropic usage object (message_start or cumulative message_delta)."""
    base = base or Usage()
    read = raw.get("cache_read_input_tokens")
    write = raw.get("cache_creation_input_tokens")
    read = base.cache_read_tokens if read is None else int(read)
    write = base.cache_write_tokens if write is None else int(write)
    uncached = raw.get("input_tokens")
    total_in = base.input_tokens if uncached is None else int(uncached) + read + write
    out = raw.get("output_tokens")
    return Usage(
        input_tokens=total_in,
        output_tokens=base.output_tokens if out is None else int(out),
        cache_read_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=base.reasoning_tokens,
    )


class Decoder:
    """Anthropic upstream SSE events -> canonical stream events."""

    def __init__(self) -> None:
        self._usage: Usage | None = None
        self._done = False  # message_stop or an error seen: nothing more is expected
        self._lane: tuple[str, DeltaKind, int] | None = None  # (head, kind, index): fast()

    def fast(self, raw: str) -> Delta | None:
        """A text or input_json delta by its shape (stream_lane.py), else None. The last
        head that passed is remembered: a block's deltas share it."""
        if self._done:
            return None
        lane = self._lane
        if lane is not None and raw.startswith(lane[0]):
            head, kind, index = lane
        else:
            m = _DELTA[0].match(raw) or _DELTA[1].match(raw)
            if m is None:
                return None
            head, kind, index = raw[: m.end()], "text" if m[2] else "args", int(m[1])
        found = string_at(raw, len(head))
        if found is None or not closes(raw, found[1], "}}"):
            return None
        self._lane = (head, kind, index)
        return (kind, index, found[0])

    def feed(self, raw: str) -> list[StreamEvent]:
        if self._done:
            return []
        try:
            data = fastjson.loads(raw)
        except ValueError:
            return self._fail("upstream_protocol", "upstream sent an invalid JSON event")
        kind = data.get("type") if isinstance(data, dict) else None
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        return handler(self, data) if handler else []  # ping and future events

    def close(self) -> list[StreamEvent]:
        if self._done:
            return []
        return self._fail("upstream", EARLY_END)

    def _fail(self, kind: str, message: str) -> list[StreamEvent]:
        self._done = True
        return [ErrorEvent(kind=kind, message=message)]

    def _message_start(self, data: dict[str, Any]) -> list[StreamEvent]:
        msg = data.get("message") or {}
        self._usage = _usage_in(msg.get("usage") or {}, None)
        return [
            Start(id=str(msg.get("id", "")), model=str(msg.get("model", "")), usage=self._usage)
        ]

    def _block_start(self, data: dict[str, Any]) -> list[StreamEvent]:
        index = int(data.get("index", 0))
        block = data.get("content_block") or {}
        btype = block.get("type")
        if btype in ("tool_use", "server_tool_use"):
            start = BlockStart(
                index=index,
                kind="tool_call",
                tool_id=str(block.get("id", "")),
                tool_name=str(block.get("name", "")),
            )
            initial = block.get("input")
            # Some servers put the whole input in the start block instead of deltas.
            if initial:
                return [start, ToolArgsDelta(index=index, partial_json=_dumps(initial))]
            return [start]
        if btype == "thinking":
            out: list[StreamEvent] = [BlockStart(index=index, kind="reasoning")]
            if block.get("thinking") or block.get("signature"):
                out.append(
                    ReasoningDelta(
                        index=index,
                        text=block.get("thinking") or "",
                        signature=common.tag(block.get("signature"), FAMILY),
                    )
                )
            return out
        if btype == "redacted_thinking":
            return [
                BlockStart(index=index, kind="reasoning"),
                ReasoningDelta(
                    index=index, redacted=common.tag(str(block.get("data", "")), FAMILY)
                ),
            ]
        out = [BlockStart(index=index, kind="text")]
        if block.get("text"):
            out.append(TextDelta(index=index, text=block["text"]))
        return out

    def _block_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        index = int(data.get("index", 0))
        delta = data.get("delta") or {}
        dtype = delta.get("type")
        if dtype == "text_delta":
            return [TextDelta(index=index, text=delta.get("text", ""))]
        if dtype == "input_json_delta":
            return [ToolArgsDelta(index=index, partial_json=delta.get("partial_json", ""))]
        if dtype == "thinking_delta":
            return [ReasoningDelta(index=index, text=delta.get("thinking", ""))]
        if dtype == "signature_delta":
            signature = common.tag(delta.get("signature"), FAMILY)
            return [ReasoningDelta(index=index, signature=signature)] if signature else []
        return []  # citations_delta and future deltas have no canonical meaning

    def _block_stop(self, data: dict[str, Any]) -> list[StreamEvent]:
        return [BlockStop(index=int(data.get("index", 0)))]

    def _message_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        delta = data.get("delta") or {}
        self._usage = _usage_in(data.get("usage") or {}, self._usage)
        reason = _STOP_IN.get(str(delta.get("stop_reason")), StopReason.END_TURN)
        return [
            Finish(
                stop_reason=reason,
                stop_sequence=delta.get("stop_sequence"),
                usage=self._usage,
            )
        ]

    def _message_stop(self, data: dict[str, Any]) -> list[StreamEvent]:
        self._done = True
        return [End()]

    def _error(self, data: dict[str, Any]) -> list[StreamEvent]:
        err = data.get("error") or {}
        kind = _ERROR_IN.get(str(err.get("type")), "upstream")
        return self._fail(kind, str(err.get("message", "upstream error")))


_HANDLERS = {
    "message_start": Decoder._message_start,
    "content_block_start": Decoder._block_start,
    "content_block_delta": Decoder._block_delta,
    "content_block_stop": Decoder._block_stop,
    "message_delta": Decoder._message_delta,
    "message_stop": Decoder._message_stop,
    "error": Decoder._error,
}
