"""Gemini API: models/{model}:generateContent, :streamGenerateContent, :countTokens.

Owns the request shape (the model is in the path, stream in the method), the upstream
path, x-goog-api-key auth, the `{"error":{"code","message","status"}}` error body, stream
chunk classes, usage extraction, and `JsonArrayFramer`.

Rules:
- Upstream streams are always asked as SSE (`?alt=sse`): every chunk is a full
  GenerateContentResponse in one `data:` line. A client that asked the default form (a
  streamed JSON array) gets the same chunks re-framed by `JsonArrayFramer`.
- usageMetadata repeats on every chunk and is cumulative: the last one counts.
- Route paths carry `model:method` in `path_model` (see registry.match_route); the
  method decides `stream` and `parse_request` splits at the last ':'.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

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
    kind_status,
    loads_object,
    query_value,
    require_list,
    strip_query_params,
    try_loads_object,
)
from core.dialects.scan import TailScanner, find_json_object
from core.errors import BadRequest
from core.sse import SSEEvent, SSEParser, encode_event

GENERATE = "generateContent"
STREAM_GENERATE = "streamGenerateContent"
COUNT_TOKENS = "countTokens"
METHODS = frozenset({GENERATE, STREAM_GENERATE, COUNT_TOKENS})

ERROR_STATUSES: dict[str, str] = {
    "invalid_request": "INVALID_ARGUMENT",
    "authentication": "UNAUTHENTICATED",
    "not_found": "NOT_FOUND",
    "request_too_large": "INVALID_ARGUMENT",
    "rate_limited": "RESOURCE_EXHAUSTED",
    "overloaded": "UNAVAILABLE",
    "upstream": "UNAVAILABLE",
    "upstream_timeout": "DEADLINE_EXCEEDED",
    "upstream_connect": "UNAVAILABLE",
    "upstream_protocol": "UNAVAILABLE",
    "internal": "INTERNAL",
}

_REASONS: dict[str, str] = {
    "RESOURCE_EXHAUSTED": ErrorReason.RATE_LIMIT,
    "UNAVAILABLE": ErrorReason.OVERLOADED,
    "INTERNAL": ErrorReason.API,
    "UNKNOWN": ErrorReason.API,
    "DEADLINE_EXCEEDED": ErrorReason.TIMEOUT,
    "INVALID_ARGUMENT": ErrorReason.INVALID_REQUEST,
    "FAILED_PRECONDITION": ErrorReason.INVALID_REQUEST,
    "UNAUTHENTICATED": ErrorReason.AUTHENTICATION,
    "PERMISSION_DENIED": ErrorReason.PERMISSION,
    "NOT_FOUND": ErrorReason.NOT_FOUND,
}
_CODE_REASONS: dict[int, str] = {
    429: ErrorReason.RATE_LIMIT,
    503: ErrorReason.OVERLOADED,
    500: ErrorReason.API,
    504: ErrorReason.TIMEOUT,
}

# Query parameters the proxy owns: the key is replaced by the upstream's, and the stream
# form is decided by upstream_path (always SSE upstream).
_PROXY_PARAMS = ("key", "alt")


def split_model_method(path_model: str) -> tuple[str, str]:
    """'models/x:streamGenerateContent' -> ('models/x', 'streamGenerateContent')."""
    model, sep, method = path_model.rpartition(":")
    if not sep:
        return path_model, GENERATE
    return model, method


def gemini_usage_of(obj: Any) -> Usage:
    if not isinstance(obj, dict):
        return Usage()
    candidates = as_int(obj.get("candidatesTokenCount"))
    thoughts = as_int(obj.get("thoughtsTokenCount"))
    # thinking is billed as output, as Anthropic's and OpenAI's output counts include it
    output = (
        None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
    )
    return Usage(
        input_tokens=as_int(obj.get("promptTokenCount")),
        output_tokens=output,
        cache_read_tokens=as_int(obj.get("cachedContentTokenCount")),
    )


def _stream_usage(head: bytes, tail: bytes) -> Usage:
    return gemini_usage_of(find_json_object(tail, b"usageMetadata"))


def _error(status: int, kind: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "status": ERROR_STATUSES.get(kind, "INTERNAL"),
        }
    }


def _has_content(obj: dict[str, Any]) -> bool:
    candidates = obj.get("candidates")
    if isinstance(candidates, list):
        for cand in candidates:
            if isinstance(cand, dict) and (
                dig(cand, "content", "parts") or cand.get("finishReason")
            ):
                return True
    # a prompt refused by a safety filter: no candidates, promptFeedback.blockReason; it is
    # the model's answer (another upstream would refuse too), so it is content, not error
    feedback = obj.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


class GeminiSpec:
    __slots__ = ()
    dialect = Dialect.GEMINI
    classifies_by_name = False

    def parse_request(
        self, operation: Operation, path_model: str | None, query: str, body: bytes
    ) -> Inbound:
        if not path_model:
            raise BadRequest("the model is missing from the path (models/{model}:method)")
        model, method = split_model_method(path_model)
        if not model or method not in METHODS:
            raise BadRequest(f"unsupported Gemini method path '{path_model}'")
        obj = loads_object(body)
        # countTokens accepts `contents` or a whole `generateContentRequest`
        require_list(obj, "contents", required=operation is Operation.GENERATE)
        stream = operation is Operation.GENERATE and method == STREAM_GENERATE
        return Inbound(
            dialect=self.dialect,
            operation=operation,
            model=model,
            stream=stream,
            body=obj,
            raw_body=body,
            gemini_sse=query_value(query, "alt") == "sse",
            query=strip_query_params(query, _PROXY_PARAMS),
        )

    def upstream_path(self, operation: Operation, model: str, stream: bool) -> str:
        # tuned models live under /v1beta/tunedModels/..., the rest under /v1beta/models/
        name = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
        base = "/v1beta/" + quote(name, safe="/-._~")
        if operation is Operation.COUNT_TOKENS:
            return f"{base}:{COUNT_TOKENS}"
        if stream:
            return f"{base}:{STREAM_GENERATE}?alt=sse"
        return f"{base}:{GENERATE}"

    def auth_headers(self, key: str) -> list[tuple[bytes, bytes]]:
        return [(b"x-goog-api-key", key.encode())]

    def with_model(self, inbound: Inbound, model: str) -> bytes:
        return inbound.raw_body  # the model is in the path, never in the body

    def error_body(self, status: int, kind: str, message: str) -> bytes:
        return dumps(_error(status, kind, message))

    def error_event(self, kind: str, message: str) -> bytes:
        # google-genai recognises a stream error by the chunk text starting '{"error":'
        return encode_event(dumps(_error(kind_status(kind), kind, message)).decode())

    def classify_event(self, event: SSEEvent) -> EventKind:
        obj = try_loads_object(event.data)
        if obj is None:
            return EventKind.META
        if obj.get("error"):
            return EventKind.ERROR
        if _has_content(obj):
            return EventKind.CONTENT
        return EventKind.META  # e.g. a chunk with only usageMetadata

    def error_reason(self, event: SSEEvent) -> str:
        obj = try_loads_object(event.data)
        error = obj.get("error") if obj else None
        if not isinstance(error, dict):
            return ErrorReason.UNKNOWN
        status = error.get("status")
        if isinstance(status, str) and status:
            return _REASONS.get(status, status)
        code = as_int(error.get("code"))
        return _CODE_REASONS.get(code, ErrorReason.UNKNOWN) if code else ErrorReason.UNKNOWN

    def usage_from_body(self, body: bytes) -> Usage:
        obj = try_loads_object(body)
        return gemini_usage_of(obj.get("usageMetadata") if obj else None)

    def stream_scanner(self) -> TailScanner:
        # every chunk of a finished answer's last event carries finishReason
        return TailScanner(
            trigger=b'"finishReason"', end_markers=(b'"finishReason"',), parse_usage=_stream_usage
        )

    def estimate_input_tokens(self, body: dict[str, Any]) -> int:
        return estimate_tokens(body)

    def models_body(self, models: list[str]) -> bytes:
        entries = [
            {
                "name": m if m.startswith("models/") else f"models/{m}",
                "displayName": m,
                "supportedGenerationMethods": [GENERATE, STREAM_GENERATE, COUNT_TOKENS],
            }
            for m in models
        ]
        return dumps({"models": entries})


GEMINI = GeminiSpec()


# The response content-type for the JSON-array stream form (the upstream's is SSE's).
JSON_ARRAY_CONTENT_TYPE = b"application/json; charset=UTF-8"


class JsonArrayFramer:
    """Upstream SSE bytes -> the streamed JSON array Gemini sends without `alt=sse`.

    Framing: `[` + first chunk, then `,` + each next chunk, each followed by CRLF, and `]`
    at close (`[]` for a stream with no chunk). Incremental: one element per complete
    SSE event, so the client sees each chunk as soon as it arrives. A proxy error event
    (`GEMINI.error_event(...)`) fed through it becomes an `{"error":...}` element.
    """

    __slots__ = ("_closed", "_parser", "_started")

    def __init__(self) -> None:
        self._parser = SSEParser()
        self._started = False
        self._closed = False

    def feed(self, chunk: bytes) -> bytes:
        return self._frame(self._parser.feed(chunk))

    def close(self) -> bytes:
        if self._closed:
            return b""
        out = self._frame(self._parser.close())
        self._closed = True
        return out + (b"]" if self._started else b"[]")

    def _frame(self, events: list[SSEEvent]) -> bytes:
        out = bytearray()
        for event in events:
            data = event.data.strip()
            if not data.startswith("{"):  # not a JSON object: nothing the client can parse
                continue
            out += b"," if self._started else b"["
            out += data.encode() + b"\r\n"
            self._started = True
        return bytes(out)
