"""Anthropic Messages streams <-> canonical stream events, sans-IO.

Grammar (docs: "Streaming messages"): `message_start` (a Message with empty content and
input usage), then per content block `content_block_start` / `content_block_delta`
(text_delta, input_json_delta, thinking_delta, signature_delta) / `content_block_stop`,
then `message_delta` (stop_reason, stop_sequence, cumulative usage), then `message_stop`.
Every event carries an `event:` line equal to its data `type`. `ping` is ignored. A mid-
stream failure is `event: error` with {"type":"error","error":{"type":..., "message":...}}.

Rules:
- Usage: Anthropic's `input_tokens` excludes cache reads and writes; canonical input counts
  them all, so the decoder adds them and the encoder subtracts them.
- A `redacted_thinking` block arrives whole in `content_block_start`; it becomes a
  reasoning block whose only delta carries `redacted`. The encoder opens reasoning blocks
  lazily so it can choose between `thinking` and `redacted_thinking` on the first delta.
- The encoder numbers client blocks itself (a dropped empty block never leaves a gap).
- Opaque tokens follow the body rules (common.py): the decoder tags signatures and
  redacted data `ccx:anthropic:`; the encoder emits them raw when Anthropic minted them,
  tagged otherwise, so the client hands them back next turn. A foreign redacted token
  (OpenAI encrypted_content) arriving after visible thinking is that thinking block's
  signature, as anthropic.py writes it; alone, it is a redacted_thinking block. A Gemini
  function-call signature rides in the tool_use id (`<id>__ccxsig__<b64url>`).
"""

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
_STOP_OUT: dict[StopReason, str] = {
    StopReason.END_TURN: "end_turn",
    StopReason.MAX_TOKENS: "max_tokens",
    StopReason.STOP_SEQUENCE: "stop_sequence",
    StopReason.TOOL_USE: "tool_use",
    StopReason.CONTENT_FILTER: "refusal",
    StopReason.REFUSAL: "refusal",
    StopReason.ERROR: "end_turn",
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


def _usage_out(usage: Usage) -> dict[str, int]:
    uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    return {
        "input_tokens": max(uncached, 0),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
    }


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
