"""The body-translation facade the proxy calls: client dialect <-> upstream dialect.

Rules:
- Pure dict -> dict (bytes for errors); every translation goes through the canonical
  model (canonical.py): read with the source dialect's module, write with the target's.
- Same-dialect traffic never comes here (the proxy passes bytes through untouched).
- A request the target cannot represent raises core.errors.BadRequest naming the field.
- Streaming is carried from the body; a Gemini client's body has no stream flag (the URL
  chooses), so the proxy sets `"stream": true` in the body it hands over for
  streamGenerateContent. An OpenAI chat upstream always gets
  stream_options.include_usage=true when streaming, so usage is known.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from core.dialects import Dialect
from core.dialects.registry import SPECS
from core.translate import anthropic, canonical, gemini, openai_chat, openai_responses
from core.translate.custom_tools import restore_calls
from core.translate.estimate import estimate_count_tokens as estimate_count_tokens
from core.translate.gemini_fields import camel_request

_MODULES = {
    Dialect.ANTHROPIC: anthropic,
    Dialect.OPENAI_CHAT: openai_chat,
    Dialect.OPENAI_RESPONSES: openai_responses,
    Dialect.GEMINI: gemini,
}

# HTTP status -> core.errors kind, for upstream errors whose body names no usable kind.
_STATUS_KIND = {
    400: "invalid_request",
    401: "authentication",
    403: "authentication",
    404: "not_found",
    413: "request_too_large",
    429: "rate_limited",
    503: "overloaded",
    529: "overloaded",
    504: "upstream_timeout",
}


def read_request(body: dict[str, Any], src: Dialect, *, model: str = "") -> canonical.Request:
    if src == Dialect.GEMINI:
        return gemini.read_request(body, model=model)
    read: Callable[[dict[str, Any]], canonical.Request] = _MODULES[src].read_request
    return read(body)


def translate_request(
    body: dict[str, Any], *, src: Dialect, dst: Dialect, model: str, client_model: str
) -> dict[str, Any]:
    req = read_request(body, src, model=client_model)
    out: dict[str, Any] = _MODULES[dst].write_request(req, model=model)
    return out


def translate_response(
    body: dict[str, Any],
    *,
    src: Dialect,
    dst: Dialect,
    client_model: str,
    custom_tools: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """`custom_tools`: the client's free-form tool names (`custom_tool_names`); calls to
    them become custom calls with raw input again (custom_tools.py)."""
    resp: canonical.Response = _MODULES[src].read_response(body)
    resp = restore_calls(resp, custom_tools)
    out: dict[str, Any] = _MODULES[dst].write_response(resp, model=client_model)
    return out


def custom_tool_names(body: dict[str, Any], *, src: Dialect) -> frozenset[str]:
    """Names of the free-form (`custom`) tools a client request defines.

    Only OpenAI Responses (`{"type": "custom", "name"}`) and Chat
    (`{"type": "custom", "custom": {"name"}}`) have them; other dialects answer empty.
    """
    tools = body.get("tools")
    if src not in (Dialect.OPENAI_RESPONSES, Dialect.OPENAI_CHAT) or not isinstance(tools, list):
        return frozenset()
    names: set[str] = set()
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type") != "custom":
            continue
        named = tool.get("custom") if src is Dialect.OPENAI_CHAT else tool
        if isinstance(named, dict) and isinstance(named.get("name"), str):
            names.add(named["name"])
    return frozenset(names)


def translate_error(status: int, body: bytes, *, src: Dialect, dst: Dialect) -> bytes:
    """Any upstream error body -> the client dialect's error body, message kept."""
    message, kind = _error_message(body)
    if kind is None:
        kind = _STATUS_KIND.get(status, "upstream" if status >= 500 else "invalid_request")
    return SPECS[dst].error_body(status, kind, message or f"upstream {src} answered {status}")


def _error_message(body: bytes) -> tuple[str, str | None]:
    """(message, kind or None). Anthropic, OpenAI and Gemini all nest {"error": {...}}."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:2000], None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # Gemini sometimes answers with a one-element list
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        kind = "overloaded" if err.get("type") == "overloaded_error" else None
        return err["message"], kind
    if isinstance(err, str):
        return err, None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"], None
    return text[:2000], None


def count_tokens_request(
    body: dict[str, Any], *, src: Dialect, dst: Dialect, model: str
) -> dict[str, Any]:
    """Anthropic count_tokens body <-> Gemini countTokens body."""
    if src == Dialect.GEMINI:
        body = camel_request(body)  # proto JSON: snake_case field names are valid too
        inner = body.get("generateContentRequest") or {"contents": body.get("contents") or []}
        req = gemini.read_request(inner, model=model)
    else:
        req = read_request({**body, "max_tokens": body.get("max_tokens") or 1}, src)
    if dst == Dialect.GEMINI:
        full = gemini.write_request(req, model=model)
        return {"generateContentRequest": {"model": f"models/{model}", **full}}
    out: dict[str, Any] = _MODULES[dst].write_request(req, model=model)
    out.pop("max_tokens", None)  # count_tokens takes no max_tokens
    out.pop("stream", None)
    return out


def count_tokens_response(body: dict[str, Any], *, src: Dialect, dst: Dialect) -> dict[str, Any]:
    """{"input_tokens": n} <-> {"totalTokens": n}."""
    if src == Dialect.GEMINI:
        n = int(body.get("totalTokens") or 0)
    else:
        n = int(body.get("input_tokens") or 0)
    if dst == Dialect.GEMINI:
        return {"totalTokens": n}
    return {"input_tokens": n}
