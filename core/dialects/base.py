"""The contract every dialect implements for same-dialect pass-through, and shared helpers.

One module per dialect (anthropic, openai_chat, openai_responses, gemini) exposes one
module-level object satisfying `DialectSpec`; `registry.SPECS` maps `Dialect` to it.

Rules:
- Pure: no trio/httpx, no clocks. Bytes in, bytes or values out.
- Validate only what the proxy needs (model, stream, top-level shape); the provider
  validates its own schema and its error reaches the client untouched.
- Pass-through is byte-exact: `with_model` returns the very same `raw_body` object when
  nothing changes, so the proxy can tell (and tests can assert `is`).
- Stream scanners are fed every relayed chunk, so `feed` only appends bytes and runs a few
  C-level substring searches; JSON is parsed once, in `result()`, from bounded buffers
  (`TailScanner` in scan.py).
- `kind` strings are core.errors kinds; each dialect maps them to its own error names.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from core import fastjson
from core.dialects import Dialect
from core.errors import BadRequest
from core.sse import SSEEvent


class Operation(StrEnum):
    GENERATE = "generate"
    COUNT_TOKENS = "count_tokens"


class Inbound(NamedTuple):
    """What the proxy learned from a client request (a tuple: built once per request, a
    frozen dataclass costs a call per field)."""

    dialect: Dialect
    operation: Operation
    model: str  # client's model name ('' only when the dialect allows none)
    stream: bool
    body: dict[str, Any]  # parsed JSON body
    raw_body: bytes  # untouched bytes
    gemini_sse: bool = True  # Gemini stream form asked: SSE (alt=sse) or a JSON array
    query: str = ""  # client query minus auth (and, for Gemini, `alt`) params, forwarded


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Token counts as the provider reports them (not normalised across dialects).

    Anthropic's input_tokens excludes cache reads/writes; OpenAI's and Gemini's include
    cached tokens. Output includes reasoning/thinking tokens in every dialect.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


NO_USAGE = Usage()  # immutable: the one "nothing reported" value, shared


class EventKind(StrEnum):
    META = "meta"  # envelope or keep-alive: the preflight keeps holding
    CONTENT = "content"  # the first real output: the preflight commits
    ERROR = "error"  # an in-band error: before commit, fail over
    END = "end"  # the stream's proper terminator


class ErrorReason(StrEnum):
    """Normalised reasons `error_reason` returns (an unknown upstream reason passes raw)."""

    OVERLOADED = "overloaded_error"
    RATE_LIMIT = "rate_limit_error"
    API = "api_error"
    TIMEOUT = "timeout_error"
    INVALID_REQUEST = "invalid_request_error"
    AUTHENTICATION = "authentication_error"
    PERMISSION = "permission_error"
    NOT_FOUND = "not_found_error"
    REQUEST_TOO_LARGE = "request_too_large"
    UNKNOWN = "unknown_error"


class StreamScanner(Protocol):
    def feed(self, chunk: bytes) -> None: ...

    def result(self) -> tuple[Usage, bool]: ...


class DialectSpec(Protocol):
    dialect: Dialect
    # classify_event needs only the `event:` name (the data matters for errors alone): a
    # stream preflight may then skip parsing the data of the events before content.
    classifies_by_name: bool

    def parse_request(
        self, operation: Operation, path_model: str | None, query: str, body: bytes
    ) -> Inbound: ...

    def upstream_path(self, operation: Operation, model: str, stream: bool) -> str: ...

    def auth_headers(self, key: str) -> list[tuple[bytes, bytes]]: ...

    def with_model(self, inbound: Inbound, model: str) -> bytes: ...

    def error_body(self, status: int, kind: str, message: str) -> bytes: ...

    def error_event(self, kind: str, message: str) -> bytes: ...

    def classify_event(self, event: SSEEvent) -> EventKind: ...

    def error_reason(self, event: SSEEvent) -> str: ...

    def usage_from_body(self, body: bytes) -> Usage: ...

    def stream_scanner(self) -> StreamScanner: ...

    def estimate_input_tokens(self, body: dict[str, Any]) -> int: ...

    def models_body(self, models: list[str]) -> bytes: ...


# ---------------------------------------------------------------- kinds and statuses
# The HTTP status each core.errors kind answers with, for error events that carry a code.
KIND_STATUS: dict[str, int] = {
    "invalid_request": 400,
    "authentication": 401,
    "not_found": 404,
    "request_too_large": 413,
    "rate_limited": 429,
    "overloaded": 503,
    "upstream": 502,
    "upstream_timeout": 504,
    "upstream_connect": 502,
    "upstream_protocol": 502,
    "internal": 500,
}


def kind_status(kind: str) -> int:
    return KIND_STATUS.get(kind, 500)


# ---------------------------------------------------------------- JSON helpers
def dumps(value: Any) -> bytes:
    """Compact JSON, UTF-8, non-ASCII kept as is (what the providers send)."""
    return fastjson.dumps(value)


def loads_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or BadRequest saying what is wrong."""
    if not body.strip():
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        value = fastjson.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"request body must be a JSON object, got {type(value).__name__}")
    return value


def try_loads_object(data: bytes | str) -> dict[str, Any] | None:
    """A JSON object or None; never raises (for response bodies and stream events)."""
    try:
        value = fastjson.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise BadRequest("missing required field 'model'")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("'model' must be a non-empty string")
    return model


def require_list(body: dict[str, Any], field: str, *, required: bool = True) -> None:
    if field not in body:
        if required:
            raise BadRequest(f"missing required field '{field}'")
        return
    if not isinstance(body[field], list):
        raise BadRequest(f"'{field}' must be a list")


def stream_flag(body: dict[str, Any]) -> bool:
    value = body.get("stream", False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest("'stream' must be a boolean")
    return value


def with_body_model(inbound: Inbound, model: str) -> bytes:
    """The body to send upstream: the untouched bytes unless the model name changes."""
    if model == inbound.model:
        return inbound.raw_body
    return dumps({**inbound.body, "model": model})


def as_int(value: Any) -> int | None:
    # bool is an int subclass; a usage count is never a bool
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


# ---------------------------------------------------------------- query strings
def strip_query_params(query: str, names: Iterable[str]) -> str:
    """`query` without the named parameters; the rest byte-exact, in order."""
    drop = set(names)
    if not query:
        return ""
    kept = [part for part in query.split("&") if part and part.partition("=")[0] not in drop]
    return "&".join(kept)


def strip_auth_query(query: str) -> str:
    """Removes `key=` (Gemini's API key parameter) and keeps the rest byte-exact."""
    return strip_query_params(query, ("key",))


def query_value(query: str, name: str) -> str | None:
    for part in query.split("&"):
        key, sep, value = part.partition("=")
        if key == name:
            return value if sep else ""
    return None


def join_query(path: str, query: str) -> str:
    """`path` with `query` appended ('?' or '&' as `path` needs); `path` when query is ''."""
    if not query:
        return path
    return f"{path}{'&' if '?' in path else '?'}{query}"


# ---------------------------------------------------------------- token estimate
# Keys whose string values are not prompt text: ids, enums, base64 payloads, signatures.
_NOT_TEXT_KEYS = frozenset(
    {
        "model",
        "type",
        "role",
        "id",
        "tool_use_id",
        "tool_call_id",
        "call_id",
        "data",
        "signature",
        "thoughtSignature",
        "thought_signature",
        "encrypted_content",
        "mimeType",
        "media_type",
        "mime_type",
        "detail",
        "cache_control",
        "previous_response_id",
    }
)


def estimate_tokens(body: dict[str, Any]) -> int:
    """Characters of text in the body / 4, +1: a cheap stand-in before the upstream counts."""
    return _text_chars(body) // 4 + 1


def _text_chars(value: Any) -> int:
    if isinstance(value, str):
        # data: URLs are base64 images, not text the model reads as tokens
        return 0 if value.startswith("data:") else len(value)
    if isinstance(value, dict):
        return sum(_text_chars(v) for k, v in value.items() if k not in _NOT_TEXT_KEYS)
    if isinstance(value, list):
        return sum(_text_chars(v) for v in value)
    return 0


def sse_event_name(event: SSEEvent, data: dict[str, Any] | None) -> str:
    """The event's type: the `event:` field, else the data's "type"."""
    if event.event:
        return event.event
    kind = data.get("type") if data else None
    return kind if isinstance(kind, str) else ""
