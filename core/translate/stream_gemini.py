"""Gemini streamGenerateContent (`alt=sse`) streams <-> canonical stream events, sans-IO.

Grammar: `data: {GenerateContentResponse}` lines, no `event:` line and no terminal marker.
Each chunk has `candidates[0].content.parts` (text parts, `thought: true` parts, whole
`functionCall` parts, any of them with a `thoughtSignature`), `usageMetadata`,
`modelVersion`, `responseId`; the last candidate carries `finishReason`. A mid-stream
error is `data: {"error": {"code", "message", "status"}}` (what google-genai raises on).

Rules:
- Gemini sends whole function calls: the decoder emits a tool block with one args delta;
  the encoder buffers argument fragments until BlockStop and sends the parsed `args`.
- Gemini may give no call ids: the decoder synthesises `call_<n>` (n = the call's position
  in the response, the canonical.py convention); the encoder keeps given ids in
  `functionCall.id` so a client can echo them in `functionResponse.id`.
- Signatures follow the body rules (common.py, gemini.py). A thought part's signature is
  tagged `ccx:gemini:` and ends its reasoning block (one signed thought, one block, as the
  body reader makes one Reasoning per part). A functionCall part's signature rides on the
  tool BlockStart (raw, like ToolCall.signature), so non-Gemini clients get it inside the
  tool id. A signature on a text part becomes a signature-only reasoning block just before
  that part (the Gemini writer re-attaches it to the part that follows). The encoder
  writes a signature the client can return: raw when Gemini minted it, else the tagged
  token base64-wrapped; a signature-only block becomes `{"thought": true, "text": "",
  "thoughtSignature": ...}`. OpenAI encrypted_content (`redacted`) is written the same
  way (gemini_write.reasoning_token); Anthropic redacted_thinking has no Gemini field and
  is dropped.
- Usage: `candidatesTokenCount` excludes `thoughtsTokenCount`; canonical output includes
  reasoning, so the decoder adds them and the encoder splits them again.
- End: the chunk with `finishReason` ends the stream; closing before it is an early end.
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
from core.translate.gemini import read_signature, reasoning_token, write_signature
from core.translate.stream_lane import Delta, shape, string_at

FAMILY: common.Family = "gemini"
EARLY_END = "upstream stream ended early"

_FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
_STOP_OUT: dict[StopReason, str] = {
    StopReason.END_TURN: "STOP",
    StopReason.STOP_SEQUENCE: "STOP",
    StopReason.TOOL_USE: "STOP",
    StopReason.MAX_TOKENS: "MAX_TOKENS",
    StopReason.CONTENT_FILTER: "SAFETY",
    StopReason.REFUSAL: "SAFETY",
    StopReason.ERROR: "OTHER",
}
# kind -> (HTTP code, google.rpc status)
_ERROR_OUT: dict[str, tuple[int, str]] = {
    "overloaded": (503, "UNAVAILABLE"),
    "rate_limited": (429, "RESOURCE_EXHAUSTED"),
    "invalid_request": (400, "INVALID_ARGUMENT"),
    "authentication": (401, "UNAUTHENTICATED"),
    "not_found": (404, "NOT_FOUND"),
    "upstream_timeout": (504, "DEADLINE_EXCEEDED"),
}
_ERROR_IN: dict[str, str] = {
    "UNAVAILABLE": "overloaded",
    "RESOURCE_EXHAUSTED": "rate_limited",
    "INVALID_ARGUMENT": "invalid_request",
    "FAILED_PRECONDITION": "invalid_request",
    "UNAUTHENTICATED": "authentication",
    "PERMISSION_DENIED": "authentication",
    "NOT_FOUND": "not_found",
    "DEADLINE_EXCEEDED": "upstream_timeout",
}

# The fast lane's shapes (stream_lane.py): a chunk whose only candidate holds one plain
# text part and no finishReason, up to the text's string; then the rest of the candidate.
_TEXT = shape(r'\{"candidates"<:>\[\{"content"<:>\{"parts"<:>\[\{"text"<:>"')
_TEXT_END = shape(r'\}\]<,>"role"<:>"model"\}(?:<,>"index"<:>0)?\}\]')
_str = stream_lane.string  # a JSON string literal (C-accelerated)


_dumps = stream_lane.dumps


def usage_in(raw: dict[str, Any]) -> Usage:
    thoughts = int(raw.get("thoughtsTokenCount") or 0)
    return Usage(
        input_tokens=int(raw.get("promptTokenCount") or 0),
        output_tokens=int(raw.get("candidatesTokenCount") or 0) + thoughts,
        cache_read_tokens=int(raw.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


def usage_out(usage: Usage) -> dict[str, int]:
    out = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": max(usage.output_tokens - usage.reasoning_tokens, 0),
        "totalTokenCount": usage.input_tokens + usage.output_tokens,
    }
    if usage.reasoning_tokens:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    if usage.cache_read_tokens:
        out["cachedContentTokenCount"] = usage.cache_read_tokens
    return out


class Decoder:
    """Gemini upstream SSE events -> canonical stream events."""

    def __init__(self) -> None:
        self._started = False
        self._done = False
        self._next = 0
        self._open: tuple[str, int] | None = None  # ("text" | "reasoning", canonical index)
        self._calls = 0
        self._usage: Usage | None = None
        # The latest fast-lane chunk carrying usageMetadata: Gemini repeats usage on every
        # chunk, and only Finish reports it, so it is parsed once, there.
        self._usage_chunk: str | None = None

    def fast(self, raw: str) -> Delta | None:
        """A plain text chunk by its shape (stream_lane.py), else None."""
        m = _TEXT[0].match(raw) or _TEXT[1].match(raw)
        if m is None or self._open is None or self._open[0] != "text" or self._done:
            return None
        found = string_at(raw, m.end())
        if found is None or not found[0]:
            return None
        end = _TEXT_END[0].match(raw, found[1]) or _TEXT_END[1].match(raw, found[1])
        if end is None or '"error"' in raw:
            return None
        if raw.find('"usageMetadata"', end.end()) >= 0:
            self._usage_chunk = raw
        return ("text", self._open[1], found[0])

    def feed(self, raw: str) -> list[StreamEvent]:
        if self._done:
            return []
        try:
            chunk = fastjson.loads(raw)
        except ValueError:
            return self._fail("upstream_protocol", "upstream sent an invalid JSON chunk")
        if not isinstance(chunk, dict):
            return []
        if isinstance(chunk.get("error"), dict):
            err = chunk["error"]
            kind = _ERROR_IN.get(str(err.get("status")), "upstream")
            return self._fail(kind, str(err.get("message", "upstream error")))
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            rid = str(chunk.get("responseId") or "gemini")
            out.append(Start(id=rid, model=str(chunk.get("modelVersion", ""))))
        if isinstance(chunk.get("usageMetadata"), dict):
            self._usage = usage_in(chunk["usageMetadata"])
            self._usage_chunk = None
        candidates = chunk.get("candidates") or [{}]
        candidate = candidates[0]
        for part in (candidate.get("content") or {}).get("parts") or ():
            self._part(part, out)
        reason = candidate.get("finishReason")
        if reason:
            self._finish(str(reason), out)
        return out

    def close(self) -> list[StreamEvent]:
        if self._done:
            return []
        return self._fail("upstream", EARLY_END)

    def _fail(self, kind: str, message: str) -> list[StreamEvent]:
        self._done = True
        return [ErrorEvent(kind=kind, message=message)]

    def _close_open(self, out: list[StreamEvent]) -> None:
        if self._open is not None:
            out.append(BlockStop(index=self._open[1]))
            self._open = None

    def _block(self, kind: str, out: list[StreamEvent]) -> int:
        """The index of an open block of `kind` (text/reasoning), opening one if needed."""
        if self._open is not None and self._open[0] == kind:
            return self._open[1]
        self._close_open(out)
        i = self._next
        self._next += 1
        out.append(BlockStart(index=i, kind="text" if kind == "text" else "reasoning"))
        self._open = (kind, i)
        return i

    def _part(self, part: dict[str, Any], out: list[StreamEvent]) -> None:
        raw = read_signature(part.get("thoughtSignature"))
        if isinstance(part.get("functionCall"), dict):
            self._call(part["functionCall"], raw, out)
            return
        signature = common.tag(raw, FAMILY)
        if part.get("thought"):
            i = self._block("reasoning", out)
            out.append(ReasoningDelta(index=i, text=str(part.get("text", "")), signature=signature))
            if signature:
                self._close_open(out)  # a signature ends its thought, as one body part
            return
        if signature:  # a signature on a text part: a signature-only block before it
            i = self._block("reasoning", out)
            out.append(ReasoningDelta(index=i, signature=signature))
            self._close_open(out)
        if isinstance(part.get("text"), str) and part["text"]:
            i = self._block("text", out)
            out.append(TextDelta(index=i, text=part["text"]))

    def _call(self, call: dict[str, Any], signature: str | None, out: list[StreamEvent]) -> None:
        self._close_open(out)
        i = self._next
        self._next += 1
        tool_id = str(call.get("id") or f"call_{self._calls}")
        self._calls += 1
        out.append(
            BlockStart(
                index=i,
                kind="tool_call",
                tool_id=tool_id,
                tool_name=str(call.get("name", "")),
                signature=signature,
            )
        )
        out.append(ToolArgsDelta(index=i, partial_json=_dumps(call.get("args") or {})))
        out.append(BlockStop(index=i))

    def _finish(self, reason: str, out: list[StreamEvent]) -> None:
        self._close_open(out)
        if self._usage_chunk is not None:  # usage from a later chunk than the last parsed
            raw = fastjson.loads(self._usage_chunk).get("usageMetadata")
            self._usage = usage_in(raw) if isinstance(raw, dict) else self._usage
        if reason == "STOP" or reason == "FINISH_REASON_UNSPECIFIED":
            stop = StopReason.TOOL_USE if self._calls else StopReason.END_TURN
        elif reason == "MAX_TOKENS":
            stop = StopReason.MAX_TOKENS
        elif reason in _FILTERED:
            stop = StopReason.CONTENT_FILTER
        else:
            stop = StopReason.ERROR  # MALFORMED_FUNCTION_CALL, OTHER, ...
        self._done = True
        out.append(Finish(stop_reason=stop, usage=self._usage))
        out.append(End())


def error_event(kind: str, message: str) -> bytes:
    code, status = _ERROR_OUT.get(kind, (500, "INTERNAL"))
    body = {"error": {"code": code, "message": message, "status": status}}
    return f"data: {_dumps(body)}\n\n".encode()


class Encoder:
    """Canonical stream events -> Gemini client SSE bytes."""

    def __init__(self, *, model: str) -> None:
        self._model = model
        self._tail = ""  # ',"modelVersion":...,"responseId":...}' suffix of every chunk
        # canonical index -> (id, name, kind, signature, argument fragments)
        self._tools: dict[int, tuple[str | None, str, str, str | None, list[str]]] = {}
        self._finished = False

    def feed(self, event: StreamEvent) -> bytes:
        if self._finished:
            return b""
        match event:
            case TextDelta(index=i, text=t):
                return self.text(i, t)
            case ToolArgsDelta(index=i, partial_json=p):
                return self.args(i, p)
            case ReasoningDelta(text=t, signature=s, redacted=r):
                return self._reasoning(t, reasoning_token(s or None, r or None, to_client=True))
            case BlockStart(kind="tool_call"):
                self._tools[event.index] = (
                    event.tool_id,
                    event.tool_name or "",
                    event.tool_kind,
                    event.signature,
                    [],
                )
                return b""
            case BlockStop(index=i):
                return self._call(i) if i in self._tools else b""
            case Start():
                rid = _dumps(event.id)
                self._tail = f',"modelVersion":{_dumps(self._model)},"responseId":{rid}}}'
                return b""
            case Finish():
                return self._finish(event)
            case End():
                self._finished = True
                return b""
            case ErrorEvent(kind=k, message=m):
                self._finished = True
                return error_event(k, m)
        return b""

    def text(self, index: int, text: str) -> bytes:
        """A text part from a template (stream_lane.py)."""
        if self._finished or not text:
            return b""
        return (
            f'data: {{"candidates":[{{"content":{{"parts":[{{"text":{_str(text)}}}],'
            f'"role":"model"}},"index":0}}]{self._tail or "}"}\n\n'
        ).encode()

    def args(self, index: int, fragment: str) -> bytes:
        """Gemini sends whole calls: fragments wait for BlockStop."""
        if not self._finished and index in self._tools:
            self._tools[index][4].append(fragment)
        return b""

    def _chunk(self, candidate: dict[str, Any], usage: dict[str, int] | None = None) -> bytes:
        body = '{"candidates":[' + _dumps(candidate) + "]"
        if usage is not None:
            body += ',"usageMetadata":' + _dumps(usage)
        return f"data: {body}{self._tail or '}'}\n\n".encode()

    def _parts(self, parts: list[dict[str, Any]]) -> bytes:
        return self._chunk({"content": {"parts": parts, "role": "model"}, "index": 0})

    def _reasoning(self, text: str, token: str | None) -> bytes:
        if not text and not token:
            return b""
        part: dict[str, Any] = {"text": text, "thought": True}
        if token:
            part["thoughtSignature"] = write_signature(token)
        return self._parts([part])

    def _call(self, index: int) -> bytes:
        tool_id, name, kind, signature, fragments = self._tools.pop(index)
        raw = "".join(fragments)
        args: Any
        if kind == "custom":
            args = {"input": raw}  # a raw-input tool has no JSON object: wrap it
        else:
            try:
                args = fastjson.loads(raw) if raw.strip() else {}
            except ValueError:
                args = {}  # truncated arguments (max tokens) cannot be parsed
        call: dict[str, Any] = {"name": name, "args": args if isinstance(args, dict) else {}}
        if tool_id:
            call["id"] = tool_id
        part: dict[str, Any] = {"functionCall": call}
        if signature:
            part["thoughtSignature"] = signature
        return self._parts([part])

    def _finish(self, event: Finish) -> bytes:
        out = b"".join(self._call(i) for i in sorted(self._tools))
        candidate = {"finishReason": _STOP_OUT[event.stop_reason], "index": 0}
        return out + self._chunk(candidate, usage_out(event.usage or Usage()))
