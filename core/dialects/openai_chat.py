"""OpenAI Chat Completions: POST /v1/chat/completions.

Owns the request shape the proxy needs (model, stream), the upstream path and Bearer
auth, the `{"error":{"message","type","param","code"}}` error body (shared with the
Responses API, which imports it from here), stream chunk classes and usage extraction.

Stream grammar: `data: {chat.completion.chunk}` lines; the first carries only the role,
then content/tool_calls/refusal deltas, a chunk with finish_reason, a usage-only chunk
(`choices: []`, when `stream_options.include_usage`), then `data: [DONE]`. A mid-stream
failure is a `data: {"error":{...}}` line (the SDK raises on it) and no [DONE].
"""

from __future__ import annotations

from typing import Any

from core.dialects import Dialect
from core.dialects.base import (
    ErrorReason,
    EventKind,
    Inbound,
    Operation,
    Usage,
    as_int,
    dig,
    dumps,
    estimate_tokens,
    loads_object,
    require_list,
    require_model,
    stream_flag,
    strip_auth_query,
    try_loads_object,
    with_body_model,
)
from core.dialects.scan import TailScanner, find_json_object
from core.errors import NotFound
from core.sse import SSEEvent, encode_event

# core.errors kind -> (error.type, error.code), after what api.openai.com answers.
ERROR_TYPES: dict[str, tuple[str, str | None]] = {
    "invalid_request": ("invalid_request_error", None),
    "authentication": ("invalid_request_error", "invalid_api_key"),
    "not_found": ("invalid_request_error", "model_not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limited": ("rate_limit_exceeded", "rate_limit_exceeded"),
    "overloaded": ("server_error", "overloaded"),
    "upstream": ("server_error", "upstream_error"),
    "upstream_timeout": ("server_error", "upstream_timeout"),
    "upstream_connect": ("server_error", "upstream_connect_error"),
    "upstream_protocol": ("server_error", "upstream_protocol_error"),
    "internal": ("server_error", None),
}

# OpenAI error types/codes (and a few compatible servers') -> normalised reasons.
REASONS: dict[str, str] = {
    "rate_limit_exceeded": ErrorReason.RATE_LIMIT,
    "rate_limit_error": ErrorReason.RATE_LIMIT,
    "requests": ErrorReason.RATE_LIMIT,
    "tokens": ErrorReason.RATE_LIMIT,
    "server_error": ErrorReason.API,
    "api_error": ErrorReason.API,
    "internal_error": ErrorReason.API,
    "overloaded": ErrorReason.OVERLOADED,
    "overloaded_error": ErrorReason.OVERLOADED,
    "server_is_overloaded": ErrorReason.OVERLOADED,
    "timeout": ErrorReason.TIMEOUT,
    "upstream_timeout": ErrorReason.TIMEOUT,
    "invalid_request_error": ErrorReason.INVALID_REQUEST,
    "invalid_api_key": ErrorReason.AUTHENTICATION,
    "authentication_error": ErrorReason.AUTHENTICATION,
    "model_not_found": ErrorReason.NOT_FOUND,
    "not_found_error": ErrorReason.NOT_FOUND,
    "context_length_exceeded": ErrorReason.INVALID_REQUEST,
}


def openai_error(kind: str, message: str) -> dict[str, Any]:
    err_type, code = ERROR_TYPES.get(kind, ("server_error", None))
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


def openai_error_reason(error: Any) -> str:
    """Normalised reason of an OpenAI `error` object: code first (more precise), then type."""
    if not isinstance(error, dict):
        return ErrorReason.UNKNOWN
    for field in ("code", "type"):
        value = error.get(field)
        if isinstance(value, str) and value in REASONS:
            return REASONS[value]
    raw = error.get("code") or error.get("type")
    return raw if isinstance(raw, str) and raw else ErrorReason.UNKNOWN


def openai_models_body(models: list[str]) -> bytes:
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "ccx-tray"} for m in models]
    return dumps({"object": "list", "data": data})


def chat_usage_of(obj: Any) -> Usage:
    if not isinstance(obj, dict):
        return Usage()
    return Usage(
        input_tokens=as_int(obj.get("prompt_tokens")),
        output_tokens=as_int(obj.get("completion_tokens")),
        cache_read_tokens=as_int(dig(obj, "prompt_tokens_details", "cached_tokens")),
    )


def _stream_usage(head: bytes, tail: bytes) -> Usage:
    return chat_usage_of(find_json_object(tail, b"usage"))


def _delta_has_content(delta: Any) -> bool:
    # Anything beyond the role with a value is output: content, tool_calls, refusal,
    # function_call, audio, or a compatible server's reasoning_content.
    if not isinstance(delta, dict):
        return False
    return any(key != "role" and value for key, value in delta.items())


class OpenAIChatSpec:
    __slots__ = ()
    dialect = Dialect.OPENAI_CHAT
    classifies_by_name = False

    def parse_request(
        self, operation: Operation, path_model: str | None, query: str, body: bytes
    ) -> Inbound:
        obj = loads_object(body)
        model = require_model(obj)
        require_list(obj, "messages")
        return Inbound(
            dialect=self.dialect,
            operation=operation,
            model=model,
            stream=stream_flag(obj),
            body=obj,
            raw_body=body,
            query=strip_auth_query(query),
        )

    def upstream_path(self, operation: Operation, model: str, stream: bool) -> str:
        if operation is Operation.COUNT_TOKENS:
            raise NotFound("the OpenAI Chat Completions API has no token counting endpoint")
        return "/chat/completions"

    def auth_headers(self, key: str) -> list[tuple[bytes, bytes]]:
        return [(b"authorization", b"Bearer " + key.encode())]

    def with_model(self, inbound: Inbound, model: str) -> bytes:
        return with_body_model(inbound, model)

    def error_body(self, status: int, kind: str, message: str) -> bytes:
        return dumps(openai_error(kind, message))

    def error_event(self, kind: str, message: str) -> bytes:
        return encode_event(dumps(openai_error(kind, message)).decode())

    def classify_event(self, event: SSEEvent) -> EventKind:
        data = event.data
        if data.strip() == "[DONE]":
            return EventKind.END
        obj = try_loads_object(data)
        if obj is None:
            return EventKind.META
        if obj.get("error"):
            return EventKind.ERROR
        choices = obj.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict):
                    continue
                if choice.get("finish_reason") or _delta_has_content(choice.get("delta")):
                    return EventKind.CONTENT
        return EventKind.META

    def error_reason(self, event: SSEEvent) -> str:
        obj = try_loads_object(event.data)
        return openai_error_reason(obj.get("error") if obj else None)

    def usage_from_body(self, body: bytes) -> Usage:
        obj = try_loads_object(body)
        return chat_usage_of(obj.get("usage") if obj else None)

    def stream_scanner(self) -> TailScanner:
        return TailScanner(
            trigger=b"[DONE]",
            end_markers=(b"\ndata: [DONE]", b"\ndata:[DONE]"),
            parse_usage=_stream_usage,
        )

    def estimate_input_tokens(self, body: dict[str, Any]) -> int:
        return estimate_tokens(body)

    def models_body(self, models: list[str]) -> bytes:
        return openai_models_body(models)


OPENAI_CHAT = OpenAIChatSpec()
