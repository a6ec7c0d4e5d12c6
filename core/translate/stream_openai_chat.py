"""OpenAI Chat Completions streams <-> canonical stream events, sans-IO.

Grammar: `data: {chat.completion.chunk}` lines (no `event:` line), each with id, object,
created, model and `choices[0].delta` (role first, then `content`, or `tool_calls` entries
with index/id/type/function{name, arguments} followed by argument fragments keyed by
index), `finish_reason` on the last choice chunk; when `stream_options.include_usage` is
set a final chunk with `choices: []` and `usage`; then `data: [DONE]`. A mid-stream error
is `data: {"error": {"message", "type", "code"}}` (what the official SDK raises on).

Rules:
- Reasoning has no official Chat field. The decoder reads `reasoning_content` (DeepSeek,
  vLLM) and `reasoning` (OpenRouter); the encoder writes `delta.reasoning_content`, the
  de-facto field those clients read. Signatures and redacted reasoning have no Chat field
  and are dropped on purpose; a Gemini function-call signature rides in the tool call id
  (`<id>__ccxsig__<b64url>`, common.py) like openai_chat.py writes it.
- Custom (free-form) tool calls: the chunk schema documents only function calls; the
  shape OpenAI streams and SDK users report is `{"index", "id", "type": "custom",
  "custom": {"name", "input"}}` with later `custom.input` fragments. Both sides use it.
- Chat has no block boundaries, so the decoder opens a block when the delta kind (text,
  reasoning, a new tool index) changes and closes the previous one.
- Ending: `[DONE]` ends the stream. If the upstream closes after a `finish_reason` but
  before `[DONE]`, the content is complete and the decoder ends cleanly with the usage
  seen; closing before any `finish_reason` is an early end (ErrorEvent).
"""

from __future__ import annotations

import re
import time
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
from core.translate.stream_lane import Delta, DeltaKind, shape, string_at

EARLY_END = "upstream stream ended early"

_STOP_IN: dict[str, StopReason] = {
    "stop": StopReason.END_TURN,
    "length": StopReason.MAX_TOKENS,
    "tool_calls": StopReason.TOOL_USE,
    "function_call": StopReason.TOOL_USE,
    "content_filter": StopReason.CONTENT_FILTER,
}
_STOP_OUT: dict[StopReason, str] = {
    StopReason.END_TURN: "stop",
    StopReason.STOP_SEQUENCE: "stop",
    StopReason.MAX_TOKENS: "length",
    StopReason.TOOL_USE: "tool_calls",
    StopReason.CONTENT_FILTER: "content_filter",
    StopReason.REFUSAL: "content_filter",
    StopReason.ERROR: "stop",
}
# kind -> (error.type, error.code) as OpenAI names them
_ERROR_OUT: dict[str, tuple[str, str]] = {
    "rate_limited": ("requests", "rate_limit_exceeded"),
    "overloaded": ("server_error", "overloaded"),
    "invalid_request": ("invalid_request_error", "invalid_request"),
    "authentication": ("authentication_error", "invalid_api_key"),
    "not_found": ("invalid_request_error", "model_not_found"),
    "upstream_timeout": ("server_error", "timeout"),
}
_ERROR_IN: dict[str, str] = {
    "rate_limit_exceeded": "rate_limited",
    "insufficient_quota": "rate_limited",
    "overloaded": "overloaded",
    "server_error": "upstream",
    "invalid_request_error": "invalid_request",
    "invalid_api_key": "authentication",
    "timeout": "upstream_timeout",
}


_str = stream_lane.string  # a JSON string literal (C-accelerated)

# The fast lane's shapes (stream_lane.py): the first choice's delta holding only content,
# or only one argument fragment of a tool call, up to its string; then the rest of it.
_DELTA = shape(
    r'"choices"<:>\[\{"index"<:>0<,>"delta"<:>\{(?:"content"<:>"|'
    r'"tool_calls"<:>\[\{"index"<:>(\d+)<,>"function"<:>\{"arguments"<:>")'
)
_NULLS = r'(?:<,>"(?:logprobs|finish_reason)"<:>null)*\}\]'
_TEXT_END = shape(r"\}" + _NULLS)
_ARGS_END = shape(r"\}\}\]\}" + _NULLS)
# What the generic path would also read elsewhere in the chunk: usage, an error.
_MORE = re.compile(r'"error"|"usage"\s*:\s*[^n\s]')


_dumps = stream_lane.dumps


def usage_in(raw: dict[str, Any]) -> Usage:
    prompt = raw.get("prompt_tokens_details") or {}
    completion = raw.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cache_read_tokens=int(prompt.get("cached_tokens") or 0),
        reasoning_tokens=int(completion.get("reasoning_tokens") or 0),
    )


def usage_out(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def error_kind(err: dict[str, Any]) -> str:
    for key in (err.get("code"), err.get("type")):
        if isinstance(key, str) and key in _ERROR_IN:
            return _ERROR_IN[key]
    return "upstream"


class Decoder:
    """OpenAI Chat upstream SSE events -> canonical stream events."""

    def __init__(self) -> None:
        self._started = False
        self._done = False
        self._next = 0  # next canonical block index
        self._open: tuple[str, int] | None = (
            None  # (key, canonical index); key "text"/"reasoning"/"tool:<n>"
        )
        self._tools: dict[int, int] = {}  # upstream tool index -> canonical block index
        self._ids: dict[int, str] = {}  # upstream tool index -> its call id
        self._finish: StopReason | None = None
        self._usage: Usage | None = None
        self._lane: tuple[str, DeltaKind, str] | None = None  # (head, kind, block key): fast()
        self._tail = ""  # the last chunk tail fast() accepted, for `_tail_kind` deltas
        self._tail_kind: DeltaKind = "text"

    def fast(self, raw: str) -> Delta | None:
        """A content or argument fragment chunk by its shape (stream_lane.py), else None.

        A stream repeats its chunk head (id, created, model...) and, but for usage or
        obfuscation, its tail: the last head and tail that passed are remembered, so the
        usual chunk costs two string comparisons and one string scan.
        """
        if self._open is None or self._done:
            return None
        lane = self._lane
        if lane is not None and raw.startswith(lane[0]):
            head, kind, key = lane
        else:
            m = _DELTA[0].search(raw) or _DELTA[1].search(raw)
            if m is None or _MORE.search(raw, 0, m.start()):
                return None
            head = raw[: m.end()]
            kind, key = ("text", "text") if m[1] is None else ("args", f"tool:{m[1]}")
        if self._open[0] != key:
            return None
        found = string_at(raw, len(head))
        if found is None or not found[0]:
            return None
        tail = raw[found[1] :]
        if tail != self._tail or kind != self._tail_kind:
            ends = _TEXT_END if kind == "text" else _ARGS_END
            if not (ends[0].match(tail) or ends[1].match(tail)) or _MORE.search(tail):
                return None
            self._tail, self._tail_kind = tail, kind
        self._lane = (head, kind, key)
        return (kind, self._open[1], found[0])

    def feed(self, raw: str) -> list[StreamEvent]:
        if self._done:
            return []
        if raw.strip() == "[DONE]":
            return self._end()
        try:
            chunk = fastjson.loads(raw)
        except ValueError:
            return self._fail("upstream_protocol", "upstream sent an invalid JSON chunk")
        if not isinstance(chunk, dict):
            return []
        if isinstance(chunk.get("error"), dict):
            err = chunk["error"]
            return self._fail(error_kind(err), str(err.get("message", "upstream error")))
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            out.append(Start(id=str(chunk.get("id", "")), model=str(chunk.get("model", ""))))
        if isinstance(chunk.get("usage"), dict):
            self._usage = usage_in(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) == 0:  # n > 1 is not translated: first choice only
                self._choice(choice, out)
        return out

    def close(self) -> list[StreamEvent]:
        if self._done:
            return []
        if self._finish is not None:
            return self._end()
        return self._fail("upstream", EARLY_END)

    def _fail(self, kind: str, message: str) -> list[StreamEvent]:
        self._done = True
        return [ErrorEvent(kind=kind, message=message)]

    def _end(self) -> list[StreamEvent]:
        if self._finish is None:
            return self._fail("upstream", EARLY_END)
        self._done = True
        out: list[StreamEvent] = [Finish(stop_reason=self._finish, usage=self._usage)]
        out.append(End())
        return out

    def _switch(self, key: str, out: list[StreamEvent]) -> int | None:
        """The canonical index of the open block for `key`, or None if one must be opened."""
        if self._open is not None:
            if self._open[0] == key:
                return self._open[1]
            out.append(BlockStop(index=self._open[1]))
            self._open = None
        return None

    def _open_block(self, key: str, start: BlockStart, out: list[StreamEvent]) -> int:
        self._next += 1
        self._open = (key, start.index)
        out.append(start)
        return start.index

    def _choice(self, choice: dict[str, Any], out: list[StreamEvent]) -> None:
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            i = self._switch("reasoning", out)
            if i is None:
                i = self._open_block(
                    "reasoning", BlockStart(index=self._next, kind="reasoning"), out
                )
            out.append(ReasoningDelta(index=i, text=reasoning))
        content = delta.get("content") or delta.get("refusal")  # a refusal is shown as text
        if isinstance(content, str) and content:
            i = self._switch("text", out)
            if i is None:
                i = self._open_block("text", BlockStart(index=self._next, kind="text"), out)
            out.append(TextDelta(index=i, text=content))
        for call in delta.get("tool_calls") or ():
            self._tool(call, out)
        reason = choice.get("finish_reason")
        if reason:
            self._switch("", out)  # closes whatever is open
            self._finish = _STOP_IN.get(reason, StopReason.END_TURN)

    def _tool(self, call: dict[str, Any], out: list[StreamEvent]) -> None:
        n = int(call.get("index", 0))
        custom = call.get("custom")
        is_custom = call.get("type") == "custom" or (isinstance(custom, dict) and bool(custom))
        fn = (custom if is_custom else call.get("function")) or {}
        new_id = call.get("id")
        if new_id and n in self._tools and self._ids.get(n) != new_id:
            # Some compatible servers send whole calls without distinct indexes: a new id
            # at a known index is a new call, filed under a fresh private index.
            n = -len(self._tools) - 1
            while n in self._tools:
                n -= 1
        if new_id:
            self._ids[n] = str(new_id)
        key = f"tool:{n}"
        i = self._switch(key, out)
        if i is None:
            if n in self._tools:
                i = self._tools[n]  # a late fragment of an already closed call: kept in place
            else:
                start = BlockStart(
                    index=self._next,
                    kind="tool_call",
                    tool_id=str(call.get("id") or f"call_{self._next}"),
                    tool_name=str(fn.get("name") or ""),
                    tool_kind="custom" if is_custom else "function",
                )
                i = self._tools[n] = self._open_block(key, start, out)
        args = fn.get("input" if is_custom else "arguments")
        if args:
            out.append(ToolArgsDelta(index=i, partial_json=args))


def error_event(kind: str, message: str) -> bytes:
    etype, code = _ERROR_OUT.get(kind, ("server_error", kind))
    body = {"error": {"message": message, "type": etype, "param": None, "code": code}}
    return f"data: {_dumps(body)}\n\n".encode()


class Encoder:
    """Canonical stream events -> OpenAI Chat client SSE bytes.

    `include_usage` mirrors the client's `stream_options.include_usage`: only then is the
    final usage chunk (empty `choices`) sent.
    """

    def __init__(self, *, model: str, include_usage: bool = True, created: int | None = None):
        self._model = model
        self._include_usage = include_usage
        self._created = int(time.time()) if created is None else created
        self._head = ""  # '{"id":...,"object":...,"created":...,"model":...,' prefix
        self._tool_slots: dict[int, int] = {}  # canonical index -> tool_calls[].index
        self._custom: set[int] = set()  # canonical indexes of custom (free-form) calls
        self._finished = False

    def feed(self, event: StreamEvent) -> bytes:
        if self._finished:
            return b""
        match event:
            case TextDelta(index=i, text=t):
                return self.text(i, t)
            case ToolArgsDelta(index=i, partial_json=p):
                return self.args(i, p)
            case ReasoningDelta(text=t):
                return self._fast("reasoning_content", t) if t else b""
            case BlockStart(kind="tool_call"):
                return self._tool_start(event)
            case Start():
                return self._start(event)
            case Finish():
                return self._finish(event)
            case End():
                self._finished = True
                return b"data: [DONE]\n\n"
            case ErrorEvent(kind=k, message=m):
                self._finished = True
                return error_event(k, m)
        return b""  # BlockStart of text/reasoning, BlockStop: Chat has no block framing

    def text(self, index: int, text: str) -> bytes:
        if self._finished or not text:
            return b""
        return self._fast("content", text)

    def args(self, index: int, fragment: str) -> bytes:
        """An argument fragment; a function call's from a template (stream_lane.py)."""
        slot = self._tool_slots.get(index)
        if self._finished or slot is None or not fragment:
            return b""
        if index in self._custom:
            return self._chunk({"tool_calls": [{"index": slot, "custom": {"input": fragment}}]})
        return (
            f'data: {self._head}"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":{slot},'
            f'"function":{{"arguments":{_str(fragment)}}}}}]}},"logprobs":null,'
            '"finish_reason":null}]}\n\n'
        ).encode()

    def _start(self, event: Start) -> bytes:
        cid = event.id if event.id.startswith("chatcmpl-") else f"chatcmpl-{event.id}"
        head = {"id": cid, "object": "chat.completion.chunk", "created": self._created}
        head["model"] = self._model
        self._head = _dumps(head)[:-1] + ","
        return self._chunk({"role": "assistant", "content": ""})

    def _fast(self, field: str, text: str) -> bytes:
        """The hot path (one text delta): a string template instead of a dict dump."""
        return (
            f'data: {self._head}"choices":[{{"index":0,"delta":{{"{field}":{_str(text)}}},'
            '"logprobs":null,"finish_reason":null}]}\n\n'
        ).encode()

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return f'data: {self._head}"choices":[{_dumps(choice)}]}}\n\n'.encode()

    def _tool_start(self, event: BlockStart) -> bytes:
        slot = self._tool_slots[event.index] = len(self._tool_slots)
        call_id = common.id_with_signature(event.tool_id or f"call_{event.index}", event.signature)
        call: dict[str, Any] = {"index": slot, "id": call_id}
        if event.tool_kind == "custom":  # the shape Chat's custom calls stream in (module rules)
            self._custom.add(event.index)
            call |= {"type": "custom", "custom": {"name": event.tool_name or "", "input": ""}}
        else:
            call |= {
                "type": "function",
                "function": {"name": event.tool_name or "", "arguments": ""},
            }
        return self._chunk({"tool_calls": [call]})

    def _finish(self, event: Finish) -> bytes:
        out = self._chunk({}, _STOP_OUT[event.stop_reason])
        if self._include_usage:
            usage = _dumps(usage_out(event.usage or Usage()))
            out += f'data: {self._head}"choices":[],"usage":{usage}}}\n\n'.encode()
        return out
