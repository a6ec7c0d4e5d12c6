"""Realistic response bodies and requests for the four dialects, serialised once.

Owns: what the fake upstream answers (JSON bodies, SSE scripts, error bodies and error
events) and what the load generator sends (pre-built request bytes).

Rules:
- Everything is built once per (dialect, events) and cached: the fake upstream must not
  spend CPU on JSON per request, or it becomes the thing being measured.
- Shapes follow each provider's documented wire format, including usage, so a proxy that
  scans for usage finds it where real upstreams put it.
- A stream script is `prelude` (sent at once), `deltas` (one SSE event each, paced by the
  fake's event delay) and `tail` (stop events with usage, sent right after the last delta).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal


class Kind(StrEnum):
    """The API a request speaks, as the fake upstream recognises it by path."""

    ANTHROPIC = "anthropic"
    OPENAI_CHAT = "openai"
    OPENAI_RESPONSES = "openai-responses"
    GEMINI = "gemini"


FaultStatus = Literal[429, 500, 529]

INPUT_TOKENS = 25
CREATED = 1_764_000_000
MODELS: dict[Kind, str] = {
    Kind.ANTHROPIC: "claude-sonnet-4-5-20250929",
    Kind.OPENAI_CHAT: "gpt-4o-mini-2024-07-18",
    Kind.OPENAI_RESPONSES: "gpt-4.1-mini-2025-04-14",
    Kind.GEMINI: "gemini-2.5-flash",
}
_WORDS = (
    "The", " proxy", " relays", " each", " event", " as", " it", " arrives", ",", " adding",
    " almost", " nothing", " to", " the", " latency", " of", " the", " call", ".", "\n",
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamScript:
    """One SSE response body split where the fake upstream may pause."""

    prelude: bytes
    deltas: tuple[bytes, ...]
    tail: bytes

    @property
    def event_count(self) -> int:
        return _count_events(self.prelude) + len(self.deltas) + _count_events(self.tail)

    def body(self) -> bytes:
        return self.prelude + b"".join(self.deltas) + self.tail


def _count_events(block: bytes) -> int:
    return block.count(b"\n\n") + block.count(b"\r\n\r\n")


def _j(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _sse(data: Any, event: str | None = None, *, crlf: bool = False) -> bytes:
    text = (f"event: {event}\n" if event else "") + f"data: {_j(data)}\n\n"
    if crlf:
        text = text.replace("\n", "\r\n")
    return text.encode()


def words(n: int) -> list[str]:
    return [_WORDS[i % len(_WORDS)] for i in range(n)]


# ---------------------------------------------------------------- JSON bodies


@functools.cache
def json_body(kind: Kind, events: int) -> bytes:
    """The non-stream answer carrying the text of `events` deltas and its usage."""
    text = "".join(words(events))
    builder = {
        Kind.ANTHROPIC: _anthropic_json,
        Kind.OPENAI_CHAT: _chat_json,
        Kind.OPENAI_RESPONSES: _responses_json,
        Kind.GEMINI: _gemini_json,
    }[kind]
    return _j(builder(text, events)).encode()


def _anthropic_usage(out: int) -> dict[str, Any]:
    return {
        "input_tokens": INPUT_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": out,
    }


def _anthropic_json(text: str, out: int) -> dict[str, Any]:
    return {
        "id": "msg_01BenchFakeUpstream0000001",
        "type": "message",
        "role": "assistant",
        "model": MODELS[Kind.ANTHROPIC],
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(out),
    }


def _chat_usage(out: int) -> dict[str, Any]:
    return {
        "prompt_tokens": INPUT_TOKENS,
        "completion_tokens": out,
        "total_tokens": INPUT_TOKENS + out,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _chat_json(text: str, out: int) -> dict[str, Any]:
    message = {"role": "assistant", "content": text, "refusal": None}
    return {
        "id": "chatcmpl-BenchFakeUpstream0001",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODELS[Kind.OPENAI_CHAT],
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": _chat_usage(out),
        "system_fingerprint": "fp_bench",
    }


def _responses_usage(out: int) -> dict[str, Any]:
    return {
        "input_tokens": INPUT_TOKENS,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": INPUT_TOKENS + out,
    }


def _responses_item(text: str | None) -> dict[str, Any]:
    done = text is not None
    content: list[dict[str, Any]] = []
    if done:
        content.append({"type": "output_text", "text": text, "annotations": []})
    return {
        "id": "msg_BenchFakeUpstream0001",
        "type": "message",
        "status": "completed" if done else "in_progress",
        "role": "assistant",
        "content": content,
    }


def _responses_json(text: str | None, out: int) -> dict[str, Any]:
    done = text is not None
    return {
        "id": "resp_BenchFakeUpstream0001",
        "object": "response",
        "created_at": CREATED,
        "status": "completed" if done else "in_progress",
        "model": MODELS[Kind.OPENAI_RESPONSES],
        "output": [_responses_item(text)] if done else [],
        "usage": _responses_usage(out) if done else None,
    }


def _gemini_usage(out: int) -> dict[str, Any]:
    return {
        "promptTokenCount": INPUT_TOKENS,
        "candidatesTokenCount": out,
        "totalTokenCount": INPUT_TOKENS + out,
    }


def _gemini_chunk(text: str, out: int, *, final: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if final:
        candidate["finishReason"] = "STOP"
    candidate["index"] = 0
    return {
        "candidates": [candidate],
        "usageMetadata": _gemini_usage(out),
        "modelVersion": MODELS[Kind.GEMINI],
        "responseId": "BenchFakeUpstream0001",
    }


def _gemini_json(text: str, out: int) -> dict[str, Any]:
    return _gemini_chunk(text, out, final=True)


# ---------------------------------------------------------------- stream scripts


@functools.cache
def stream_script(kind: Kind, events: int) -> StreamScript:
    """The SSE answer with `events` text deltas (events >= 1)."""
    parts = words(max(1, events))
    builder = {
        Kind.ANTHROPIC: _anthropic_stream,
        Kind.OPENAI_CHAT: _chat_stream,
        Kind.OPENAI_RESPONSES: _responses_stream,
        Kind.GEMINI: _gemini_stream,
    }[kind]
    return builder(parts)


def _anthropic_stream(parts: list[str]) -> StreamScript:
    start_msg = {**_anthropic_json("", 1), "content": [], "stop_reason": None}
    prelude = (
        _sse({"type": "message_start", "message": start_msg}, "message_start")
        + _sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        )
        + _sse({"type": "ping"}, "ping")
    )
    deltas = tuple(
        _sse(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}},
            "content_block_delta",
        )
        for w in parts
    )
    stop = {"stop_reason": "end_turn", "stop_sequence": None}
    tail = (
        _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        + _sse(
            {"type": "message_delta", "delta": stop, "usage": {"output_tokens": len(parts)}},
            "message_delta",
        )
        + _sse({"type": "message_stop"}, "message_stop")
    )
    return StreamScript(prelude=prelude, deltas=deltas, tail=tail)


def _chat_chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-BenchFakeUpstream0001",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODELS[Kind.OPENAI_CHAT],
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }


def _chat_stream(parts: list[str]) -> StreamScript:
    prelude = _sse(_chat_chunk({"role": "assistant", "content": "", "refusal": None}, None))
    deltas = tuple(_sse(_chat_chunk({"content": w}, None)) for w in parts)
    usage_chunk = {**_chat_chunk({}, None), "choices": [], "usage": _chat_usage(len(parts))}
    tail = _sse(_chat_chunk({}, "stop")) + _sse(usage_chunk) + b"data: [DONE]\n\n"
    return StreamScript(prelude=prelude, deltas=deltas, tail=tail)


def _responses_stream(parts: list[str]) -> StreamScript:
    seq = iter(range(1_000_000))
    ids = {"item_id": "msg_BenchFakeUpstream0001", "output_index": 0}
    text = "".join(parts)
    part_done = {"type": "output_text", "text": text, "annotations": []}

    def ev(kind: str, **fields: Any) -> bytes:
        return _sse({"type": kind, "sequence_number": next(seq), **fields}, kind)

    prelude = (
        ev("response.created", response=_responses_json(None, 0))
        + ev("response.in_progress", response=_responses_json(None, 0))
        + ev("response.output_item.added", output_index=0, item=_responses_item(None))
        + ev(
            "response.content_part.added",
            **ids,
            content_index=0,
            part={"type": "output_text", "text": "", "annotations": []},
        )
    )
    deltas = tuple(ev("response.output_text.delta", **ids, content_index=0, delta=w) for w in parts)
    tail = (
        ev("response.output_text.done", **ids, content_index=0, text=text)
        + ev("response.content_part.done", **ids, content_index=0, part=part_done)
        + ev("response.output_item.done", output_index=0, item=_responses_item(text))
        + ev("response.completed", response=_responses_json(text, len(parts)))
    )
    return StreamScript(prelude=prelude, deltas=deltas, tail=tail)


def _gemini_stream(parts: list[str]) -> StreamScript:
    # Gemini separates events with CRLF pairs and repeats usage on every chunk.
    chunks = [_gemini_chunk(w, i + 1, final=False) for i, w in enumerate(parts)]
    chunks[-1] = _gemini_chunk(parts[-1], len(parts), final=True)
    encoded = tuple(_sse(c, crlf=True) for c in chunks)
    return StreamScript(prelude=b"", deltas=encoded[:-1], tail=encoded[-1])


@functools.cache
def gemini_json_array(events: int) -> bytes:
    """`:streamGenerateContent` without alt=sse answers one JSON array of the chunks."""
    parts = words(max(1, events))
    chunks = [_gemini_chunk(w, i + 1, final=i == len(parts) - 1) for i, w in enumerate(parts)]
    return _j(chunks).encode()


# ---------------------------------------------------------------- errors


_ANTHROPIC_ERRORS = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
_GEMINI_STATUS = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 529: "UNAVAILABLE"}


@functools.cache
def error_body(kind: Kind, status: int) -> bytes:
    message = {429: "Rate limited (fake upstream)", 529: "Overloaded (fake upstream)"}.get(
        status, "Internal error (fake upstream)"
    )
    if kind is Kind.ANTHROPIC:
        etype = _ANTHROPIC_ERRORS.get(status, "api_error")
        return _j({"type": "error", "error": {"type": etype, "message": message}}).encode()
    if kind is Kind.GEMINI:
        gstatus = _GEMINI_STATUS.get(status, "INTERNAL")
        return _j({"error": {"code": status, "message": message, "status": gstatus}}).encode()
    etype = "rate_limit_exceeded" if status == 429 else "server_error"
    body = {"error": {"message": message, "type": etype, "param": None, "code": etype}}
    return _j(body).encode()


@functools.cache
def error_event(kind: Kind) -> bytes:
    """The in-stream error each dialect sends when it fails after the first event."""
    message = "Overloaded (fake upstream, mid-stream)"
    err: dict[str, Any]
    if kind is Kind.ANTHROPIC:
        err = {"type": "error", "error": {"type": "overloaded_error", "message": message}}
        return _sse(err, "error")
    if kind is Kind.OPENAI_RESPONSES:
        err = {"type": "error", "code": "server_error", "message": message, "param": None}
        return _sse({**err, "sequence_number": 999_999}, "error")
    if kind is Kind.GEMINI:
        return _sse(
            {"error": {"code": 503, "message": message, "status": "UNAVAILABLE"}}, crlf=True
        )
    err = {"message": message, "type": "server_error", "param": None, "code": "server_error"}
    return _sse({"error": err})


# ---------------------------------------------------------------- requests

_PROMPT = "Write a haiku about a proxy that adds no latency, then explain it in one line."


def request_body(kind: Kind, model: str, *, stream: bool) -> bytes:
    """A small (about 210-byte) request body in the dialect of `kind`."""
    if kind is Kind.GEMINI:
        body: dict[str, Any] = {
            "contents": [{"role": "user", "parts": [{"text": _PROMPT}]}],
            "generationConfig": {"maxOutputTokens": 1024, "temperature": 0.2},
        }
    elif kind is Kind.OPENAI_RESPONSES:
        body = {"model": model, "input": _PROMPT, "max_output_tokens": 1024, "stream": stream}
    else:
        body = {
            "model": model,
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": _PROMPT}],
            "temperature": 0.2,
            "stream": stream,
        }
    return json.dumps(body).encode()


def request_path(kind: Kind, model: str, *, stream: bool) -> str:
    if kind is Kind.ANTHROPIC:
        return "/v1/messages"
    if kind is Kind.OPENAI_CHAT:
        return "/v1/chat/completions"
    if kind is Kind.OPENAI_RESPONSES:
        return "/v1/responses"
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"/v1beta/models/{model}:{method}"


def build_request(
    kind: Kind, *, host: str, port: int, model: str | None = None, stream: bool = False
) -> bytes:
    """The complete HTTP/1.1 request bytes, keep-alive, as an SDK would send them."""
    model = model or MODELS[kind]
    body = request_body(kind, model, stream=stream)
    auth = {
        Kind.ANTHROPIC: "x-api-key: sk-ant-bench-0000\r\nanthropic-version: 2023-06-01\r\n",
        Kind.GEMINI: "x-goog-api-key: bench-0000\r\n",
    }.get(kind, "authorization: Bearer sk-bench-0000\r\n")
    head = (
        f"POST {request_path(kind, model, stream=stream)} HTTP/1.1\r\n"
        f"host: {host}:{port}\r\n"
        f"{auth}"
        "content-type: application/json\r\n"
        "accept: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body
