"""OpenAI Responses upstream SSE events -> canonical stream events, sans-IO.

Grammar and rules: see stream_openai_responses.py (the facade that re-exports
this module's public names).
"""

from __future__ import annotations

import re
from typing import Any

from core import fastjson
from core.translate import common
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
from core.translate.stream_lane import Delta, shape, string_at

FAMILY: common.Family = "openai"
EARLY_END = "upstream stream ended early"

_INCOMPLETE_IN: dict[str, StopReason] = {
    "max_output_tokens": StopReason.MAX_TOKENS,
    "content_filter": StopReason.CONTENT_FILTER,
}
_ERROR_IN: dict[str, str] = {
    "rate_limit_exceeded": "rate_limited",
    "server_is_overloaded": "overloaded",
    "slow_down": "rate_limited",
    "server_error": "upstream",
    "invalid_prompt": "invalid_request",
    "invalid_request": "invalid_request",
    "invalid_api_key": "authentication",
}

# The fast lane's shapes (stream_lane.py): a text or argument delta event by its type,
# then its indexes and its delta string.
_TYPE = shape(
    r'\{"type"<:>"response\.(?:(output_text)|function_call_arguments|custom_tool_call_input)'
    r'\.delta"<,>'
)
_TEXT_AT = shape(r'"output_index"<:>(\d+)<,>"content_index"<:>(\d+)<,>"delta"<:>"')
_TYPE_FIRST = re.compile(r'\{\s*"type"\s*:\s*"([^"\\]*)"')  # the type, when it comes first
_ARGS_AT = shape(r'"output_index"<:>(\d+)<,>"delta"<:>"')


def usage_in(raw: dict[str, Any]) -> Usage:
    inp = raw.get("input_tokens_details") or {}
    out = raw.get("output_tokens_details") or {}
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cache_read_tokens=int(inp.get("cached_tokens") or 0),
        cache_write_tokens=int(inp.get("cache_write_tokens") or 0),
        reasoning_tokens=int(out.get("reasoning_tokens") or 0),
    )


class Decoder:
    """OpenAI Responses upstream SSE events -> canonical stream events."""

    def __init__(self) -> None:
        self._done = False
        self._next = 0
        self._blocks: dict[tuple[int, int], int] = {}  # (output_index, content_index) -> index
        self._args_seen: set[int] = set()  # tool blocks that got argument deltas
        self._summary: dict[int, int] = {}  # reasoning block -> last summary_index seen
        self._tool_used = False

    def fast(self, raw: str) -> Delta | None:
        """A text or argument delta event by its shape (stream_lane.py), else None."""
        t = _TYPE[0].match(raw) or _TYPE[1].match(raw)
        if t is None or self._done or not raw.endswith("}"):
            return None
        at = _TEXT_AT if t[1] else _ARGS_AT
        m = at[0].search(raw, t.end()) or at[1].search(raw, t.end())
        if m is None:
            return None
        i = self._blocks.get((int(m[1]), int(m[2]) if t[1] else -1))
        found = None if i is None else string_at(raw, m.end())
        if found is None or i is None:
            return None
        if t[1]:
            return ("text", i, found[0])
        self._args_seen.add(i)
        return ("args", i, found[0])

    def feed(self, raw: str) -> list[StreamEvent]:
        if self._done:
            return []
        named = _TYPE_FIRST.match(raw)
        if named is not None and named[1] not in _HANDLERS:
            # An event with no canonical meaning (in_progress, the `.done` repeats of the
            # whole text...) is not parsed at all: several carry the whole answer.
            return []
        try:
            data = fastjson.loads(raw)
        except ValueError:
            return self._fail("upstream_protocol", "upstream sent an invalid JSON event")
        kind = data.get("type") if isinstance(data, dict) else None
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        return handler(self, data) if handler else []

    def close(self) -> list[StreamEvent]:
        if self._done:
            return []
        return self._fail("upstream", EARLY_END)

    def _fail(self, kind: str, message: str) -> list[StreamEvent]:
        self._done = True
        return [ErrorEvent(kind=kind, message=message)]

    def _open(self, key: tuple[int, int], start: BlockStart) -> list[StreamEvent]:
        self._blocks[key] = start.index
        self._next += 1
        return [start]

    def _created(self, data: dict[str, Any]) -> list[StreamEvent]:
        resp = data.get("response") or {}
        return [Start(id=str(resp.get("id", "")), model=str(resp.get("model", "")))]

    def _item_added(self, data: dict[str, Any]) -> list[StreamEvent]:
        item = data.get("item") or {}
        n = int(data.get("output_index", 0))
        itype = item.get("type")
        if itype in ("function_call", "custom_tool_call"):
            self._tool_used = True
            start = BlockStart(
                index=self._next,
                kind="tool_call",
                tool_id=str(item.get("call_id") or item.get("id") or f"call_{self._next}"),
                tool_name=str(item.get("name", "")),
                tool_kind="custom" if itype == "custom_tool_call" else "function",
            )
            return self._open((n, -1), start)
        if itype == "reasoning":
            return self._open((n, -1), BlockStart(index=self._next, kind="reasoning"))
        return []  # message items open a block per content part

    def _part_added(self, data: dict[str, Any]) -> list[StreamEvent]:
        key = (int(data.get("output_index", 0)), int(data.get("content_index", 0)))
        if key in self._blocks:
            return []
        return self._open(key, BlockStart(index=self._next, kind="text"))

    def _text_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        key = (int(data.get("output_index", 0)), int(data.get("content_index", 0)))
        out = [] if key in self._blocks else self._part_added(data)
        out.append(TextDelta(index=self._blocks[key], text=str(data.get("delta", ""))))
        return out

    def _args_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        i = self._blocks.get((int(data.get("output_index", 0)), -1))
        if i is None:
            return []
        self._args_seen.add(i)
        return [ToolArgsDelta(index=i, partial_json=str(data.get("delta", "")))]

    def _reasoning_delta(self, data: dict[str, Any]) -> list[StreamEvent]:
        i = self._blocks.get((int(data.get("output_index", 0)), -1))
        if i is None:
            return []
        text = str(data.get("delta", ""))
        part = int(data.get("summary_index", data.get("content_index", 0)))
        last = self._summary.setdefault(i, part)
        if part != last:  # a new summary part: keep the parts apart as paragraphs
            self._summary[i] = part
            text = "\n\n" + text
        return [ReasoningDelta(index=i, text=text)]

    def _item_done(self, data: dict[str, Any]) -> list[StreamEvent]:
        item = data.get("item") or {}
        n = int(data.get("output_index", 0))
        out: list[StreamEvent] = []
        i = self._blocks.get((n, -1))
        if i is not None:
            if item.get("type") == "reasoning" and item.get("encrypted_content"):
                token = common.tag(str(item["encrypted_content"]), FAMILY)
                out.append(ReasoningDelta(index=i, redacted=token))
            whole = item.get("arguments") if "arguments" in item else item.get("input")
            if item.get("type") != "reasoning" and i not in self._args_seen and whole:
                out.append(ToolArgsDelta(index=i, partial_json=str(whole)))
        for key in sorted(k for k in self._blocks if k[0] == n):
            out.append(BlockStop(index=self._blocks.pop(key)))
        return out

    def _terminal(self, data: dict[str, Any]) -> list[StreamEvent]:
        resp = data.get("response") or {}
        out: list[StreamEvent] = [BlockStop(index=i) for i in sorted(self._blocks.values())]
        self._blocks.clear()
        reason = StopReason.TOOL_USE if self._tool_used else StopReason.END_TURN
        if data.get("type") == "response.incomplete":
            detail = (resp.get("incomplete_details") or {}).get("reason")
            reason = _INCOMPLETE_IN.get(str(detail), StopReason.MAX_TOKENS)
        usage = usage_in(resp["usage"]) if isinstance(resp.get("usage"), dict) else None
        self._done = True
        return [*out, Finish(stop_reason=reason, usage=usage), End()]

    def _failed(self, data: dict[str, Any]) -> list[StreamEvent]:
        err = (data.get("response") or {}).get("error") or {}
        return self._fail(
            _ERROR_IN.get(str(err.get("code")), "upstream"),
            str(err.get("message", "response failed")),
        )

    def _error(self, data: dict[str, Any]) -> list[StreamEvent]:
        nested = data.get("error")
        err: dict[str, Any] = nested if isinstance(nested, dict) else data
        kind = _ERROR_IN.get(str(err.get("code")), "upstream")
        return self._fail(kind, str(err.get("message", "upstream error")))


_HANDLERS = {
    "response.created": Decoder._created,
    "response.output_item.added": Decoder._item_added,
    "response.content_part.added": Decoder._part_added,
    "response.output_text.delta": Decoder._text_delta,
    "response.refusal.delta": Decoder._text_delta,
    "response.function_call_arguments.delta": Decoder._args_delta,
    "response.custom_tool_call_input.delta": Decoder._args_delta,
    "response.reasoning_summary_text.delta": Decoder._reasoning_delta,
    "response.reasoning_text.delta": Decoder._reasoning_delta,
    "response.output_item.done": Decoder._item_done,
    "response.completed": Decoder._terminal,
    "response.incomplete": Decoder._terminal,
    "response.failed": Decoder._failed,
    "error": Decoder._error,
}
