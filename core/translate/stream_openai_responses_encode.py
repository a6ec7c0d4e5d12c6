"""Canonical stream events -> OpenAI Responses client SSE bytes, sans-IO.

Grammar and rules: see stream_openai_responses.py (the facade that re-exports
this module's public names).
"""

from __future__ import annotations

import time
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

FAMILY: common.Family = "openai"

_ERROR_OUT: dict[str, str] = {
    "rate_limited": "rate_limit_exceeded",
    "overloaded": "server_is_overloaded",
    "invalid_request": "invalid_request",
    "authentication": "invalid_api_key",
    "upstream_timeout": "timeout",
}


_str = stream_lane.string  # a JSON string literal (C-accelerated)


_dumps = stream_lane.dumps


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

    def text(self, index: int, text: str) -> bytes:
        """An output_text delta from a template (stream_lane.py)."""
        item = self._items.get(index)
        if self._finished or item is None or not text:
            return b""
        item.text.append(text)
        seq = self._seq
        self._seq += 1
        return (
            'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
            f'"item_id":{_str(item.id)},"output_index":{item.n},"content_index":0,'
            f'"delta":{_str(text)},"logprobs":[],"sequence_number":{seq}}}\n\n'
        ).encode()

    def args(self, index: int, fragment: str) -> bytes:
        """An argument (or custom input) delta from a template (stream_lane.py)."""
        item = self._items.get(index)
        if self._finished or item is None or not fragment:
            return b""
        item.text.append(fragment)
        name = (
            "response.custom_tool_call_input.delta"
            if item.tool_kind == "custom"
            else "response.function_call_arguments.delta"
        )
        seq = self._seq
        self._seq += 1
        return (
            f'event: {name}\ndata: {{"type":"{name}","item_id":{_str(item.id)},'
            f'"output_index":{item.n},"delta":{_str(fragment)},"sequence_number":{seq}}}\n\n'
        ).encode()

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
