"""Anthropic Messages API: POST /v1/messages and /v1/messages/count_tokens.

Owns the request shape the proxy needs (model, stream), the upstream path and auth
header, the `{"type":"error","error":{...}}` error body and `event: error` stream event,
the stream event classes for the preflight, and usage extraction.

Stream grammar: message_start (usage with input and cache counts) · content_block_start/
delta/stop · ping · message_delta (cumulative output usage, stop_reason) · message_stop;
`event: error` may replace the rest at any point (e.g. overloaded_error).
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
    dumps,
    estimate_tokens,
    loads_object,
    require_list,
    require_model,
    sse_event_name,
    stream_flag,
    strip_auth_query,
    try_loads_object,
    with_body_model,
)
from core.dialects.scan import TailScanner, find_json_object
from core.sse import SSEEvent, encode_event

ERROR_TYPES: dict[str, str] = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "not_found": "not_found_error",
    "request_too_large": "request_too_large",
    "rate_limited": "rate_limit_error",
    "overloaded": "overloaded_error",
    "upstream": "api_error",
    "upstream_timeout": "timeout_error",
    "upstream_connect": "api_error",
    "upstream_protocol": "api_error",
    "internal": "api_error",
}

_META_EVENTS = frozenset({"message_start", "ping"})
_CONTENT_EVENTS = frozenset(
    {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"}
)

# Anthropic-compatible upstreams name a few errors differently; normalise for failover.
_REASONS: dict[str, str] = {e.value: e.value for e in ErrorReason} | {
    "rate_limit_exceeded": ErrorReason.RATE_LIMIT,
    "server_error": ErrorReason.API,
}

# A model's list has no creation time we know; a fixed one keeps the module clock-free.
_EPOCH = "1970-01-01T00:00:00Z"


def usage_of(obj: dict[str, Any] | None) -> Usage:
    if not obj:
        return Usage()
    return Usage(
        input_tokens=as_int(obj.get("input_tokens")),
        output_tokens=as_int(obj.get("output_tokens")),
        cache_read_tokens=as_int(obj.get("cache_read_input_tokens")),
        cache_write_tokens=as_int(obj.get("cache_creation_input_tokens")),
    )


def _merge(first: Usage, last: Usage) -> Usage:
    """message_start's counts, overridden by whatever the final message_delta reports."""
    return Usage(
        input_tokens=last.input_tokens if last.input_tokens is not None else first.input_tokens,
        output_tokens=(
            last.output_tokens if last.output_tokens is not None else first.output_tokens
        ),
        cache_read_tokens=(
            last.cache_read_tokens
            if last.cache_read_tokens is not None
            else first.cache_read_tokens
        ),
        cache_write_tokens=(
            last.cache_write_tokens
            if last.cache_write_tokens is not None
            else first.cache_write_tokens
        ),
    )


def _stream_usage(head: bytes, tail: bytes) -> Usage:
    first = usage_of(find_json_object(head, b"usage", last=False))
    last = usage_of(find_json_object(tail, b"usage"))
    return _merge(first, last)


class AnthropicSpec:
    __slots__ = ()
    dialect = Dialect.ANTHROPIC
    classifies_by_name = True

    def parse_request(
        self, operation: Operation, path_model: str | None, query: str, body: bytes
    ) -> Inbound:
        obj = loads_object(body)
        model = require_model(obj)
        require_list(obj, "messages")
        stream = stream_flag(obj) if operation is Operation.GENERATE else False
        return Inbound(
            dialect=self.dialect,
            operation=operation,
            model=model,
            stream=stream,
            body=obj,
            raw_body=body,
            query=strip_auth_query(query),
        )

    def upstream_path(self, operation: Operation, model: str, stream: bool) -> str:
        if operation is Operation.COUNT_TOKENS:
            return "/v1/messages/count_tokens"
        return "/v1/messages"

    def auth_headers(self, key: str) -> list[tuple[bytes, bytes]]:
        return [(b"x-api-key", key.encode())]

    def with_model(self, inbound: Inbound, model: str) -> bytes:
        return with_body_model(inbound, model)

    def _error(self, kind: str, message: str) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {"type": ERROR_TYPES.get(kind, "api_error"), "message": message},
        }

    def error_body(self, status: int, kind: str, message: str) -> bytes:
        return dumps(self._error(kind, message))

    def error_event(self, kind: str, message: str) -> bytes:
        return encode_event(dumps(self._error(kind, message)).decode(), event="error")

    def classify_event(self, event: SSEEvent) -> EventKind:
        name = event.event or sse_event_name(event, try_loads_object(event.data))
        if name in _CONTENT_EVENTS:
            return EventKind.CONTENT
        if name == "error":
            return EventKind.ERROR
        if name == "message_stop":
            return EventKind.END
        # message_start, ping and event types added later: keep holding
        return EventKind.META

    def error_reason(self, event: SSEEvent) -> str:
        data = try_loads_object(event.data)
        error = data.get("error") if data else None
        kind = error.get("type") if isinstance(error, dict) else None
        if not isinstance(kind, str) or not kind:
            return ErrorReason.UNKNOWN
        return _REASONS.get(kind, kind)

    def usage_from_body(self, body: bytes) -> Usage:
        obj = try_loads_object(body)
        usage = obj.get("usage") if obj else None
        return usage_of(usage if isinstance(usage, dict) else None)

    def stream_scanner(self) -> TailScanner:
        return TailScanner(
            trigger=b"message_stop",
            end_markers=(
                b"\nevent: message_stop",
                b'"type":"message_stop"',
                b'"type": "message_stop"',
            ),
            parse_usage=_stream_usage,
            keep_head=True,
        )

    def estimate_input_tokens(self, body: dict[str, Any]) -> int:
        return estimate_tokens(body)

    def models_body(self, models: list[str]) -> bytes:
        data = [{"type": "model", "id": m, "display_name": m, "created_at": _EPOCH} for m in models]
        return dumps(
            {
                "data": data,
                "has_more": False,
                "first_id": models[0] if models else None,
                "last_id": models[-1] if models else None,
            }
        )


ANTHROPIC = AnthropicSpec()
