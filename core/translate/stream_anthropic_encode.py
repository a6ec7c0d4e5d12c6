"""Canonical stream events -> an Anthropic Messages stream (the Encoder of
stream_anthropic.py, whose docstring holds the grammar and the rules)."""

from __future__ import annotations

from typing import Any

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
from core.translate.stream_anthropic_decode import FAMILY

_STOP_OUT: dict[StopReason, str] = {
    StopReason.END_TURN: "end_turn",
    StopReason.MAX_TOKENS: "max_tokens",
    StopReason.STOP_SEQUENCE: "stop_sequence",
    StopReason.TOOL_USE: "tool_use",
    StopReason.CONTENT_FILTER: "refusal",
    StopReason.REFUSAL: "refusal",
    StopReason.ERROR: "end_turn",
}
_ERROR_OUT: dict[str, str] = {
    "overloaded": "overloaded_error",
    "rate_limited": "rate_limit_error",
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "not_found": "not_found_error",
    "request_too_large": "request_too_large",
    "upstream_timeout": "timeout_error",
}


_str = stream_lane.string  # a JSON string literal (C-accelerated)

_dumps = stream_lane.dumps


def _usage_out(usage: Usage) -> dict[str, int]:
    uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    return {
        "input_tokens": max(uncached, 0),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
    }


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {_dumps(payload)}\n\n".encode()


_MESSAGE_STOP = _event("message_stop", {"type": "message_stop"})


def error_event(kind: str, message: str) -> bytes:
    etype = _ERROR_OUT.get(kind, "api_error")
    return _event("error", {"type": "error", "error": {"type": etype, "message": message}})


class Encoder:
    """Canonical stream events -> Anthropic client SSE bytes."""

    def __init__(self, *, model: str) -> None:
        self._model = model
        self._next = 0  # next client block index
        self._open: dict[int, int] = {}  # canonical index -> client index (started blocks)
        self._kinds: dict[int, str] = {}  # canonical index -> canonical kind (pending or open)
        self._finished = False

    def feed(self, event: StreamEvent) -> bytes:
        if self._finished:
            return b""
        match event:
            case TextDelta(index=i, text=t):
                return self.text(i, t)
            case ToolArgsDelta(index=i, partial_json=p):
                return self.args(i, p)
            case ReasoningDelta():
                return self._reasoning(event)
            case BlockStart():
                return self._block_start(event)
            case BlockStop(index=i):
                return self._block_stop(i)
            case Start():
                return self._start(event)
            case Finish():
                return self._finish(event)
            case End():
                self._finished = True
                return _MESSAGE_STOP
            case ErrorEvent(kind=k, message=m):
                self._finished = True
                return error_event(k, m)
        return b""

    def text(self, index: int, text: str) -> bytes:
        """A text delta; in an open block from a template (stream_lane.py)."""
        if self._finished or not text:
            return b""
        client = self._open.get(index)
        if client is None:
            return self._delta(index, {"type": "text_delta", "text": text})
        return (
            'event: content_block_delta\ndata: {"type":"content_block_delta",'
            f'"index":{client},"delta":{{"type":"text_delta","text":{_str(text)}}}}}\n\n'
        ).encode()

    def args(self, index: int, fragment: str) -> bytes:
        """An input_json delta; in an open block from a template (stream_lane.py)."""
        if self._finished:
            return b""
        client = self._open.get(index)
        if client is None:
            return self._delta(index, {"type": "input_json_delta", "partial_json": fragment})
        return (
            'event: content_block_delta\ndata: {"type":"content_block_delta",'
            f'"index":{client},"delta":{{"type":"input_json_delta","partial_json":'
            f"{_str(fragment)}}}}}\n\n"
        ).encode()

    def _start(self, event: Start) -> bytes:
        mid = event.id if event.id.startswith("msg_") else f"msg_{event.id}"
        message: dict[str, Any] = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage_out(event.usage or Usage()),
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _block_start(self, event: BlockStart) -> bytes:
        self._kinds[event.index] = event.kind
        if event.kind == "reasoning":
            return b""  # opened by its first delta: thinking or redacted_thinking
        if event.kind == "tool_call":
            tool_id = event.tool_id or f"toolu_{event.index}"
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": common.id_with_signature(tool_id, event.signature),
                "name": event.tool_name or "",
                "input": {},
            }
        else:
            block = {"type": "text", "text": ""}
        return self._open_block(event.index, block)

    def _open_block(self, index: int, block: dict[str, Any]) -> bytes:
        client = self._open[index] = self._next
        self._next += 1
        payload = {"type": "content_block_start", "index": client, "content_block": block}
        return _event("content_block_start", payload)

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        client = self._open.get(index)
        if client is None:
            if index in self._kinds:
                return b""
            # A delta without its BlockStart: open a text block so nothing is lost.
            self._kinds[index] = "text"
            head = self._open_block(index, {"type": "text", "text": ""})
            return head + self._delta(index, delta)
        payload = {"type": "content_block_delta", "index": client, "delta": delta}
        return _event("content_block_delta", payload)

    def _reasoning(self, event: ReasoningDelta) -> bytes:
        i = event.index
        out = b""
        signature = common.emit_token(event.signature or None, FAMILY, to_client=True)
        redacted = common.emit_token(event.redacted or None, FAMILY, to_client=True)
        if redacted is not None and common.token_family(redacted) is not None:
            signature = signature or redacted  # foreign opaque token: the block's signature
            redacted = None
            if i not in self._open and not event.text:
                out += self._open_block(i, {"type": "redacted_thinking", "data": signature})
                return out + self._close(i)
        if redacted is not None:  # Anthropic's own redacted_thinking: a block of its own
            if i in self._open:
                out += self._close(i)
            out += self._open_block(i, {"type": "redacted_thinking", "data": redacted})
            return out + self._close(i)
        if i not in self._open:
            out += self._open_block(i, {"type": "thinking", "thinking": "", "signature": ""})
        if event.text:
            out += self._delta(i, {"type": "thinking_delta", "thinking": event.text})
        if signature:
            out += self._delta(i, {"type": "signature_delta", "signature": signature})
        return out

    def _close(self, index: int) -> bytes:
        client = self._open.pop(index)
        return (
            f'event: content_block_stop\ndata: {{"type":"content_block_stop","index":{client}}}\n\n'
        ).encode()

    def _block_stop(self, index: int) -> bytes:
        self._kinds.pop(index, None)
        return self._close(index) if index in self._open else b""

    def _finish(self, event: Finish) -> bytes:
        out = b"".join(self._close(i) for i in list(self._open))
        self._kinds.clear()
        usage = _usage_out(event.usage or Usage())
        payload = {
            "type": "message_delta",
            "delta": {
                "stop_reason": _STOP_OUT[event.stop_reason],
                "stop_sequence": event.stop_sequence,
            },
            "usage": usage,
        }
        return out + _event("message_delta", payload)
