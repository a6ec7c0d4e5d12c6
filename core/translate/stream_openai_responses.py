"""OpenAI Responses streams <-> canonical stream events, sans-IO.

Grammar (docs: "Streaming API responses"): every event has an `event:` line equal to the
data's `type` and an increasing `sequence_number` from 0. `response.created`,
`response.in_progress`, then per output item `response.output_item.added` ... `.done`:
message items carry `response.content_part.added`, `response.output_text.delta`/`.done`,
`response.content_part.done`; function_call items `response.function_call_arguments.delta`
/`.done`; custom_tool_call items `response.custom_tool_call_input.delta`/`.done`; reasoning
items `response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta`/
`.done`, `response.reasoning_summary_part.done`. The stream ends with `response.completed`
(or `response.incomplete`, `response.failed`) carrying the full response object and usage.
There is no `[DONE]`.

Rules:
- One canonical block is one output item (a text block is a message item with one
  output_text part). Item ids are synthesised from the response id; tool `call_id`s are
  the canonical tool ids, kept as given.
- Reasoning text is written as a reasoning summary (what Codex and the SDK display).
  Opaque tokens follow the body rules (common.py): the decoder tags `encrypted_content`
  `ccx:openai:`; the encoder writes the item's `encrypted_content` raw when OpenAI minted
  it, else the tagged foreign token (an Anthropic signature, a Gemini thoughtSignature),
  so the client hands it back next turn. A Gemini function-call signature rides in the
  call_id (`<id>__ccxsig__<b64url>`); the item id keeps the plain id.
- Errors are written as an `error` event followed by `response.failed`, so clients that
  watch either one stop with an error, never a clean end.
"""

from __future__ import annotations

import json
import time
from typing import Any

from core.sse import SSEEvent
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

FAMILY: common.Family = "openai"
EARLY_END = "upstream stream ended early"

_INCOMPLETE_IN: dict[str, StopReason] = {
    "max_output_tokens": StopReason.MAX_TOKENS,
    "content_filter": StopReason.CONTENT_FILTER,
}
_ERROR_OUT: dict[str, str] = {
    "rate_limited": "rate_limit_exceeded",
    "overloaded": "server_is_overloaded",
    "invalid_request": "invalid_request",
    "authentication": "invalid_api_key",
    "upstream_timeout": "timeout",
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


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


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


def usage_out(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


class Decoder:
    """OpenAI Responses upstream SSE events -> canonical stream events."""

    def __init__(self) -> None:
        self._done = False
        self._next = 0
        self._blocks: dict[tuple[int, int], int] = {}  # (output_index, content_index) -> index
        self._args_seen: set[int] = set()  # tool blocks that got argument deltas
        self._summary: dict[int, int] = {}  # reasoning block -> last summary_index seen
        self._tool_used = False

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        if self._done:
            return []
        try:
            data = json.loads(event.data)
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


class _Item:
    """A client output item being streamed: what its `.done` events must repeat."""

    __slots__ = ("call_id", "id", "kind", "n", "name", "redacted", "text", "tool_kind")

    def __init__(self, kind: str, item_id: str, n: int) -> None:
        self.kind = kind
        self.id = item_id
        self.n = n
        self.text: list[str] = []
        self.call_id = ""
        self.name = ""
        self.tool_kind = "function"
        self.redacted: str | None = None


class Encoder:
    """Canonical stream events -> OpenAI Responses client SSE bytes."""

    def __init__(self, *, model: str, created: int | None = None) -> None:
        self._model = model
        self._created = int(time.time()) if created is None else created
        self._seq = 0
        self._id = "resp_"
        self._items: dict[int, _Item] = {}  # canonical index -> open item
        self._count = 0  # output items announced so far (the next output_index)
        self._output: list[dict[str, Any]] = []  # finished items, for the final response
        self._finish: Finish | None = None
        self._finished = False

    def _event(self, name: str, payload: dict[str, Any]) -> bytes:
        payload = {"type": name, **payload, "sequence_number": self._seq}
        self._seq += 1
        return f"event: {name}\ndata: {_dumps(payload)}\n\n".encode()

    def feed(self, event: StreamEvent) -> bytes:
        if self._finished:
            return b""
        match event:
            case TextDelta(index=i, text=t):
                return self._text(i, t)
            case ToolArgsDelta(index=i, partial_json=p):
                return self._args(i, p)
            case ReasoningDelta():
                return self._reasoning(event)
            case BlockStart():
                return self._block_start(event)
            case BlockStop(index=i):
                return self._block_stop(i)
            case Start():
                return self._start(event)
            case Finish():
                self._finish = event
                return self._close_all()
            case End():
                return self._completed()
            case ErrorEvent(kind=k, message=m):
                return self.error_event(k, m)
        return b""

    def _response(self, status: str, **extra: Any) -> dict[str, Any]:
        resp: dict[str, Any] = {
            "id": self._id,
            "object": "response",
            "created_at": self._created,
            "status": status,
            "error": None,
            "incomplete_details": None,
            "model": self._model,
            "output": list(self._output),
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": None,
        }
        resp.update(extra)
        return resp

    def _start(self, event: Start) -> bytes:
        self._id = event.id if event.id.startswith("resp_") else f"resp_{event.id}"
        created = self._event("response.created", {"response": self._response("in_progress")})
        progress = self._event("response.in_progress", {"response": self._response("in_progress")})
        return created + progress

    def _block_start(self, event: BlockStart) -> bytes:
        base = self._id.removeprefix("resp_")
        n = self._count
        if event.kind == "tool_call":
            item = _Item("tool", "", n)
            plain = event.tool_id or f"call_{event.index}"
            item.call_id = common.id_with_signature(plain, event.signature)
            item.name = event.tool_name or ""
            item.tool_kind = event.tool_kind
            item.id = ("ctc_" if event.tool_kind == "custom" else "fc_") + plain
        elif event.kind == "reasoning":
            # Announced on its first text or at its end with `redacted`: a signature-only
            # block (no Responses field) leaves no empty reasoning item behind.
            self._items[event.index] = _Item("reasoning", "", -1)
            return b""
        else:
            item = _Item("text", f"msg_{base}_{n}", n)
        self._items[event.index] = item
        return self._announce(item)

    def _announce(self, item: _Item) -> bytes:
        if item.n < 0:
            item.n = self._count
            item.id = f"rs_{self._id.removeprefix('resp_')}_{item.n}"
        self._count += 1
        n = item.n
        out = self._event(
            "response.output_item.added",
            {"output_index": n, "item": self._item_body(item, "in_progress")},
        )
        if item.kind == "text":
            part = {"type": "output_text", "text": "", "annotations": []}
            out += self._event(
                "response.content_part.added",
                {"item_id": item.id, "output_index": n, "content_index": 0, "part": part},
            )
        return out

    def _item_body(self, item: _Item, status: str) -> dict[str, Any]:
        text = "".join(item.text)
        if item.kind == "text":
            content = [{"type": "output_text", "text": text, "annotations": []}]
            return {
                "id": item.id,
                "type": "message",
                "status": status,
                "role": "assistant",
                "content": content if status == "completed" else [],
            }
        if item.kind == "reasoning":
            body: dict[str, Any] = {"id": item.id, "type": "reasoning", "summary": []}
            if status == "completed" and text:
                body["summary"] = [{"type": "summary_text", "text": text}]
            if item.redacted is not None:
                body["encrypted_content"] = item.redacted
            return body
        if item.tool_kind == "custom":
            return {"id": item.id, "type": "custom_tool_call", "status": status,
                    "call_id": item.call_id, "name": item.name, "input": text}  # fmt: skip
        return {"id": item.id, "type": "function_call", "status": status,
                "call_id": item.call_id, "name": item.name, "arguments": text}  # fmt: skip

    def _text(self, index: int, text: str) -> bytes:
        item = self._items.get(index)
        if item is None or not text:
            return b""
        item.text.append(text)
        payload = {"item_id": item.id, "output_index": item.n, "content_index": 0}
        payload["delta"] = text
        payload["logprobs"] = []
        return self._event("response.output_text.delta", payload)

    def _args(self, index: int, fragment: str) -> bytes:
        item = self._items.get(index)
        if item is None or not fragment:
            return b""
        item.text.append(fragment)
        name = (
            "response.custom_tool_call_input.delta"
            if item.tool_kind == "custom"
            else "response.function_call_arguments.delta"
        )
        return self._event(name, {"item_id": item.id, "output_index": item.n, "delta": fragment})

    def _reasoning(self, event: ReasoningDelta) -> bytes:
        item = self._items.get(event.index)
        if item is None:
            return b""
        token = common.emit_token(event.redacted or None, FAMILY, to_client=True)
        token = token or common.emit_token(event.signature or None, FAMILY, to_client=True)
        if token is not None:
            item.redacted = token
        if not event.text:
            return b""
        out = self._announce(item) if item.n < 0 else b""
        ids = {"item_id": item.id, "output_index": item.n, "summary_index": 0}
        if not item.text:
            part = {"type": "summary_text", "text": ""}
            out += self._event("response.reasoning_summary_part.added", {**ids, "part": part})
        item.text.append(event.text)
        return out + self._event(
            "response.reasoning_summary_text.delta", {**ids, "delta": event.text}
        )

    def _block_stop(self, index: int) -> bytes:
        item = self._items.pop(index, None)
        if item is None:
            return b""
        out = b""
        if item.n < 0:  # a reasoning item never announced
            if item.redacted is None:
                return b""
            out = self._announce(item)
        text = "".join(item.text)
        ids: dict[str, Any] = {"item_id": item.id, "output_index": item.n}
        if item.kind == "text":
            done = {**ids, "content_index": 0, "text": text, "logprobs": []}
            out += self._event("response.output_text.done", done)
            part = {"type": "output_text", "text": text, "annotations": []}
            out += self._event(
                "response.content_part.done", {**ids, "content_index": 0, "part": part}
            )
        elif item.kind == "reasoning" and text:
            ids["summary_index"] = 0
            out += self._event("response.reasoning_summary_text.done", {**ids, "text": text})
            part = {"type": "summary_text", "text": text}
            out += self._event("response.reasoning_summary_part.done", {**ids, "part": part})
        elif item.kind == "tool" and item.tool_kind == "custom":
            out += self._event("response.custom_tool_call_input.done", {**ids, "input": text})
        elif item.kind == "tool":
            out += self._event("response.function_call_arguments.done",
                               {**ids, "name": item.name, "arguments": text})  # fmt: skip
        body = self._item_body(item, "completed")
        self._output.append(body)
        return out + self._event(
            "response.output_item.done", {"output_index": item.n, "item": body}
        )

    def _close_all(self) -> bytes:
        return b"".join(self._block_stop(i) for i in sorted(self._items))

    def _completed(self) -> bytes:
        out = self._close_all()
        self._finished = True
        finish = self._finish or Finish(stop_reason=StopReason.END_TURN)
        usage = usage_out(finish.usage or Usage())
        if finish.stop_reason in (StopReason.MAX_TOKENS, StopReason.CONTENT_FILTER):
            reason = (
                "max_output_tokens"
                if finish.stop_reason == StopReason.MAX_TOKENS
                else "content_filter"
            )
            resp = self._response("incomplete", usage=usage, incomplete_details={"reason": reason})
            return out + self._event("response.incomplete", {"response": resp})
        resp = self._response("completed", usage=usage)
        return out + self._event("response.completed", {"response": resp})

    def error_event(self, kind: str, message: str) -> bytes:
        """The client's error: an `error` event, then `response.failed`."""
        if self._finished:
            return b""
        self._finished = True
        code = _ERROR_OUT.get(kind, "server_error")
        out = self._event("error", {"code": code, "message": message, "param": None})
        # response.error.code is a closed set in the API reference: only these two fit.
        closed = "rate_limit_exceeded" if kind == "rate_limited" else "server_error"
        failed = self._response("failed", error={"code": closed, "message": message})
        return out + self._event("response.failed", {"response": failed})
