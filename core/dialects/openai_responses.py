"""OpenAI Responses API: POST /v1/responses (upstream token counting: /responses/input_tokens).

Owns the request shape the proxy needs (model, stream), the upstream path, stream event
classes, the `event: error` stream event and usage extraction. Auth, the error body and
the models list are the Chat Completions ones (same platform).

Stream grammar: `event: <type>` + `data: {"type":<type>,"sequence_number":n,...}`:
response.created / in_progress / queued (envelope) · output_item.added, content_part.*,
output_text.delta, function_call_arguments.delta, reasoning_* ... (content) · a terminal
response.completed (usage in `response.usage`), response.incomplete (also a proper end,
e.g. max_output_tokens) or response.failed; `error` can arrive at any point.
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
    require_model,
    sse_event_name,
    stream_flag,
    strip_auth_query,
    try_loads_object,
    with_body_model,
)
from core.dialects.openai_chat import (
    OPENAI_CHAT,
    REASONS,
    openai_error,
    openai_error_reason,
    openai_models_body,
)
from core.dialects.scan import TailScanner, find_json_object
from core.errors import BadRequest
from core.sse import SSEEvent, encode_event

_META_EVENTS = frozenset({"response.created", "response.in_progress", "response.queued"})
_ERROR_EVENTS = frozenset({"error", "response.failed"})
# response.incomplete is a proper end (the model stopped at max_output_tokens or a
# content filter), not a failure another upstream would fix.
_END_EVENTS = frozenset({"response.completed", "response.incomplete"})


def _error_code(kind: str) -> str:
    """The `code` of a Responses `error` event: the Chat error's code, else its type."""
    error = openai_error(kind, "")["error"]
    return str(error["code"] or error["type"])


def responses_usage_of(obj: Any) -> Usage:
    if not isinstance(obj, dict):
        return Usage()
    return Usage(
        input_tokens=as_int(obj.get("input_tokens")),
        output_tokens=as_int(obj.get("output_tokens")),
        cache_read_tokens=as_int(dig(obj, "input_tokens_details", "cached_tokens")),
    )


def _stream_usage(head: bytes, tail: bytes) -> Usage:
    # response.completed repeats the whole response; `usage` follows `output` and `tools`
    # in it, so the last "usage" object of the tail is the final count.
    return responses_usage_of(find_json_object(tail, b"usage"))


class OpenAIResponsesSpec:
    __slots__ = ()
    dialect = Dialect.OPENAI_RESPONSES
    classifies_by_name = True

    def parse_request(
        self, operation: Operation, path_model: str | None, query: str, body: bytes
    ) -> Inbound:
        obj = loads_object(body)
        # A stored prompt (`prompt: {id}`) may carry the model; then the model may be absent.
        model = "" if "model" not in obj and isinstance(obj.get("prompt"), dict) else None
        if model is None:
            model = require_model(obj)
        if "input" in obj and not isinstance(obj["input"], str | list):
            raise BadRequest("'input' must be a string or a list")
        return Inbound(
            dialect=self.dialect,
            operation=operation,
            model=model,
            stream=stream_flag(obj) if operation is Operation.GENERATE else False,
            body=obj,
            raw_body=body,
            query=strip_auth_query(query),
        )

    def upstream_path(self, operation: Operation, model: str, stream: bool) -> str:
        if operation is Operation.COUNT_TOKENS:
            return "/responses/input_tokens"
        return "/responses"

    def auth_headers(self, key: str) -> list[tuple[bytes, bytes]]:
        return OPENAI_CHAT.auth_headers(key)

    def with_model(self, inbound: Inbound, model: str) -> bytes:
        return with_body_model(inbound, model)

    def error_body(self, status: int, kind: str, message: str) -> bytes:
        return dumps(openai_error(kind, message))

    def error_event(self, kind: str, message: str, *, sequence_number: int = 0) -> bytes:
        # sequence_number: best effort; 0 when the proxy does not track the upstream's
        payload = {
            "type": "error",
            "code": _error_code(kind),
            "message": message,
            "param": None,
            "sequence_number": sequence_number,
        }
        return encode_event(dumps(payload).decode(), event="error")

    def classify_event(self, event: SSEEvent) -> EventKind:
        name = event.event or sse_event_name(event, try_loads_object(event.data))
        if name in _META_EVENTS or not name:
            return EventKind.META
        if name in _ERROR_EVENTS:
            return EventKind.ERROR
        if name in _END_EVENTS:
            return EventKind.END
        return EventKind.CONTENT

    def error_reason(self, event: SSEEvent) -> str:
        data = try_loads_object(event.data)
        if not data:
            return ErrorReason.UNKNOWN
        if isinstance(data.get("error"), dict):  # chat-style {"error":{...}} from a compat server
            return openai_error_reason(data["error"])
        error = dig(data, "response", "error")  # response.failed
        if isinstance(error, dict):
            return openai_error_reason(error)
        code = data.get("code")  # the flat `error` event
        if isinstance(code, str) and code:
            return REASONS.get(code, code)
        return ErrorReason.UNKNOWN

    def usage_from_body(self, body: bytes) -> Usage:
        obj = try_loads_object(body)
        return responses_usage_of(obj.get("usage") if obj else None)

    def stream_scanner(self) -> TailScanner:
        return TailScanner(
            trigger=b"complete",
            end_markers=(
                b"\nevent: response.completed",
                b"\nevent: response.incomplete",
                b'"type":"response.completed"',
                b'"type":"response.incomplete"',
            ),
            parse_usage=_stream_usage,
        )

    def estimate_input_tokens(self, body: dict[str, Any]) -> int:
        return estimate_tokens(body)

    def models_body(self, models: list[str]) -> bytes:
        return openai_models_body(models)


OPENAI_RESPONSES = OpenAIResponsesSpec()
