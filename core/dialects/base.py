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
  C-level substring searches; JSON is parsed once, in `result()`, from bounded buffers.
- `kind` strings are core.errors kinds; each dialect maps them to its own error names.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from core import fastjson
from core.dialects import Dialect
from core.errors import BadRequest
from core.sse import SSEEvent


class Operation(StrEnum):
    GENERATE = "generate"
    COUNT_TOKENS = "count_tokens"


@dataclass(frozen=True, slots=True, kw_only=True)
class Inbound:
    """What the proxy learned from a client request."""

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


# ---------------------------------------------------------------- stream scanning
HEAD_CAP = 16 * 1024  # the first event(s): Anthropic's message_start carries input usage
TAIL_CAP = 64 * 1024  # the last events: final usage; trimmed only when twice this size


class TailScanner:
    """A cheap StreamScanner: keeps the head and a bounded tail, watches for end markers.

    `feed` appends the chunk and, until an end marker is seen, searches the chunk (and
    the seam with the previous chunk) for one short `trigger` that every marker contains;
    only on a hit are the markers checked. Markers are chosen so that they cannot occur
    inside JSON string values (a raw newline before `event:`/`data:`, or an unescaped
    `"key":"value"` pair). `result` hands head and tail to `parse_usage`.
    """

    __slots__ = (
        "_carry",
        "_chunks",
        "_ended",
        "_head",
        "_markers",
        "_parse",
        "_seam",
        "_size",
        "_trigger",
    )

    def __init__(
        self,
        *,
        trigger: bytes,
        end_markers: tuple[bytes, ...],
        parse_usage: Callable[[bytes, bytes], Usage],
        keep_head: bool = False,
    ) -> None:
        assert all(trigger in m for m in end_markers), "every marker must contain the trigger"
        self._trigger = trigger
        self._markers = end_markers
        self._parse = parse_usage
        self._seam = max(len(m) for m in end_markers) - 1
        self._carry = b"\n"  # the stream's first line starts a line too
        self._ended = False
        self._head = bytearray() if keep_head else None
        self._chunks: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        head = self._head
        if head is not None and len(head) < HEAD_CAP:
            head += chunk[: HEAD_CAP - len(head)]
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > 2 * TAIL_CAP:
            joined = b"".join(self._chunks)[-TAIL_CAP:]
            self._chunks = [joined]
            self._size = len(joined)
        if not self._ended:
            seam = self._carry + chunk[: self._seam]
            if self._trigger in chunk or self._trigger in seam:
                self._ended = any(m in chunk or m in seam for m in self._markers)
            self._carry = (self._carry + chunk[-self._seam :])[-self._seam :]

    def result(self) -> tuple[Usage, bool]:
        tail = b"".join(self._chunks)[-TAIL_CAP:]
        head = bytes(self._head) if self._head is not None else b""
        try:
            usage = self._parse(head, tail)
        except Exception:  # a scanner never breaks the relay; usage is best effort
            usage = Usage()
        return usage, self._ended


def find_json_object(buf: bytes, key: bytes, *, last: bool = True) -> dict[str, Any] | None:
    """The object value of `"key":` in raw JSON/SSE bytes (last or first occurrence).

    Occurrences whose value is not an object (`null`) or is cut off are skipped.
    """
    needle = b'"' + key + b'"'
    end = len(buf)
    start = 0
    decoder = json.JSONDecoder()
    for _ in range(16):
        pos = buf.rfind(needle, 0, end) if last else buf.find(needle, start)
        if pos < 0:
            return None
        value = _object_after(buf, pos + len(needle), decoder)
        if value is not None:
            return value
        end, start = pos, pos + 1
    return None


def _object_after(buf: bytes, i: int, decoder: json.JSONDecoder) -> dict[str, Any] | None:
    text = buf[i : i + 8192].decode("utf-8", "replace").lstrip()
    if not text.startswith(":"):
        return None
    text = text[1:].lstrip()
    if not text.startswith("{"):
        return None
    try:
        value, _ = decoder.raw_decode(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def sse_event_name(event: SSEEvent, data: dict[str, Any] | None) -> str:
    """The event's type: the `event:` field, else the data's "type"."""
    if event.event:
        return event.event
    kind = data.get("type") if data else None
    return kind if isinstance(kind, str) else ""
