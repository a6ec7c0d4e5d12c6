"""Gemini generateContent bodies -> canonical: requests and non-stream responses.

Rules: see gemini.py (the facade that re-exports this module's public names).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Literal

from core.errors import BadRequest
from core.translate import canonical as c
from core.translate import common as k
from core.translate.gemini_fields import camel_request
from core.translate.gemini_schema import lower_schema

FAMILY: k.Family = "gemini"
FINISH_IN = {
    "STOP": c.StopReason.END_TURN,
    "MAX_TOKENS": c.StopReason.MAX_TOKENS,
    "MALFORMED_FUNCTION_CALL": c.StopReason.ERROR,
    "UNEXPECTED_TOOL_CALL": c.StopReason.ERROR,
    "OTHER": c.StopReason.END_TURN,
    "FINISH_REASON_UNSPECIFIED": c.StopReason.END_TURN,
}  # every other reason (SAFETY, RECITATION, BLOCKLIST, SPII, ...) is a content filter


# ---------------------------------------------------------------- request: read
def read_request(body: dict[str, Any], *, model: str = "") -> c.Request:
    body = camel_request(body)  # google-genai mixes snake_case and camelCase field names
    if body.get("cachedContent"):
        raise BadRequest("cachedContent: server-side caches cannot be translated")
    gen = body.get("generationConfig") or {}
    if (gen.get("candidateCount") or 1) != 1:
        raise BadRequest("generationConfig.candidateCount: only one candidate can be translated")
    system = tuple(
        c.Text(text=p.get("text", ""))
        for p in (body.get("systemInstruction") or {}).get("parts") or []
    )
    return c.Request(
        model=model,
        messages=_read_contents(k.as_list(body.get("contents"), "contents")),
        system=system,
        tools=_read_tools(body.get("tools") or []),
        tool_choice=_read_tool_config(body.get("toolConfig")),
        max_tokens=gen.get("maxOutputTokens"),
        temperature=gen.get("temperature"),
        top_p=gen.get("topP"),
        top_k=gen.get("topK"),
        stop=tuple(gen.get("stopSequences") or ()),
        stream=bool(body.get("stream", False)),
        reasoning=_read_thinking(gen.get("thinkingConfig")),
        response_format=_read_format(gen),
    )


def _read_format(gen: dict[str, Any]) -> c.ResponseFormat | None:
    """responseMimeType application/json, with `responseJsonSchema` (JSON Schema) or
    `responseSchema` (OpenAPI subset) when there is a schema. Upper-case type names are
    lowered in both: Gemini CLI's classifier sends `"type": "OBJECT"` (google-genai's
    Type enum) in responseJsonSchema, which no other API accepts."""
    mime = gen.get("responseMimeType")
    schema = gen.get("responseJsonSchema")
    where = "generationConfig.responseJsonSchema"
    if schema is None and gen.get("responseSchema") is not None:
        schema, where = gen["responseSchema"], "generationConfig.responseSchema"
    schema = lower_schema(schema)
    if mime == "text/x.enum":
        raise BadRequest(
            "generationConfig.responseMimeType: text/x.enum answers are a bare enum value, "
            "which no other API dialect can constrain"
        )
    if schema is not None:
        k.require(isinstance(schema, dict), where, "expected a schema object")
        return c.ResponseFormat(kind="json_schema", schema=schema)
    if mime == "application/json":
        return c.ResponseFormat(kind="json_object")
    return None  # text/plain or no mime type: free text


def _read_contents(contents: list[Any]) -> tuple[c.Message, ...]:
    pending: list[tuple[str, str]] = []  # (id, name) of calls not yet answered
    counter = [0]
    out = []
    for i, content in enumerate(contents):
        role: Literal["user", "assistant"] = (
            "assistant" if content.get("role") == "model" else "user"
        )
        parts = _read_parts(content.get("parts") or [], f"contents[{i}]", pending, counter)
        out.append(c.Message(role=role, parts=tuple(parts)))
    return tuple(out)


def _read_parts(
    raw: list[Any], where: str, pending: list[tuple[str, str]], counter: list[int]
) -> list[c.Part]:
    """Parts in order. A streamed thought arrives in pieces with the signature on the last
    one: unsigned thought pieces join the thought that follows (one Reasoning, as the
    signature covers all of it). A signature on a text part becomes a signature-only
    Reasoning just before the text, the shape the writer re-attaches."""
    out: list[c.Part] = []
    joinable = False  # the last part is an unsigned thought
    for j, part in enumerate(raw):
        sig = read_signature(part.get("thoughtSignature"))
        if part.get("thought"):
            text = part.get("text", "")
            prev = out.pop() if joinable else None
            if isinstance(prev, c.Reasoning):
                text = prev.text + text
            out.append(c.Reasoning(text=text, signature=k.tag(sig, FAMILY)))
            joinable = sig is None
            continue
        joinable = False
        if "text" in part and sig:
            out.append(c.Reasoning(signature=k.tag(sig, FAMILY)))
        out.append(_read_part(part, f"{where}.parts[{j}]", pending, counter))
    return out


def _read_part(
    part: dict[str, Any], where: str, pending: list[tuple[str, str]], counter: list[int]
) -> c.Part:
    sig = read_signature(part.get("thoughtSignature"))
    if "text" in part:
        return c.Text(text=part["text"])
    if "functionCall" in part:
        fc = part["functionCall"]
        call_id = fc.get("id") or f"call_{counter[0]}"
        counter[0] += 1
        pending.append((call_id, fc["name"]))
        return c.ToolCall(
            id=call_id, name=fc["name"], arguments=k.dump_args(fc.get("args")), signature=sig
        )
    if "functionResponse" in part:
        return _read_function_response(part["functionResponse"], pending, counter)
    if "inlineData" in part:
        data = part["inlineData"]
        mime = data.get("mimeType", "")
        k.require(mime.startswith("image/"), where, f"{mime} data cannot be translated")
        return c.Image(media_type=mime, data=data.get("data"))
    if "fileData" in part:
        uri = part["fileData"].get("fileUri", "")
        k.require(uri.startswith(("http://", "https://")), where, "only http(s) files translate")
        k.require(
            "generativelanguage.googleapis.com" not in uri, where, "Gemini Files API URIs stay"
        )
        return c.Image(media_type=part["fileData"].get("mimeType"), url=uri)
    raise BadRequest(f"{where}: {next(iter(part), 'empty')} parts cannot be translated")


def _read_function_response(
    fr: dict[str, Any], pending: list[tuple[str, str]], counter: list[int]
) -> c.ToolResult:
    name = fr.get("name", "")
    call_id = fr.get("id")
    match = next((p for p in pending if (p[0] == call_id if call_id else p[1] == name)), None)
    if match:
        pending.remove(match)
        call_id = match[0]
    if not call_id:  # an answer to a call we never saw: still needs a stable id
        call_id = f"call_{counter[0]}"
        counter[0] += 1
    response = fr.get("response") or {}
    is_error = set(response) == {"error"}
    value = response.get("error") if is_error else response.get("output", response)
    if set(response) - {"output", "error"}:
        value = response
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return c.ToolResult(call_id=call_id, name=name, content=(c.Text(text=text),), is_error=is_error)


def read_signature(raw: Any) -> str | None:
    """A thoughtSignature from a Gemini body; a foreign token comes back base64-wrapped."""
    if not raw:
        return None
    try:
        decoded = base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return str(raw)
    return decoded if decoded.startswith(k.TAG) else str(raw)


def _read_tools(tools: list[Any]) -> tuple[c.Tool, ...]:
    out = []
    for entry in tools:  # hosted tools (googleSearch, codeExecution, ...) are dropped
        for decl in entry.get("functionDeclarations") or []:
            schema = decl.get("parametersJsonSchema")
            if schema is None and decl.get("parameters") is not None:
                schema = lower_schema(decl["parameters"])
            out.append(
                c.Tool(name=decl["name"], description=decl.get("description"), parameters=schema)
            )
    return tuple(out)


def _read_tool_config(cfg: Any) -> c.ToolChoice | None:
    fcc = (cfg or {}).get("functionCallingConfig")
    if not fcc:
        return None
    mode = fcc.get("mode", "AUTO")
    names = fcc.get("allowedFunctionNames") or []
    if mode == "ANY" and len(names) == 1:
        return c.ToolChoice(mode="tool", name=names[0])
    if names:
        raise BadRequest(
            "toolConfig.functionCallingConfig.allowedFunctionNames: a subset of "
            "several tools cannot be translated"
        )
    modes = {"AUTO": "auto", "VALIDATED": "auto", "ANY": "any", "NONE": "none"}
    k.require(mode in modes, "toolConfig.functionCallingConfig.mode", f"unknown {mode!r}")
    return c.ToolChoice(mode=modes[mode])  # type: ignore[arg-type]


def _read_thinking(cfg: Any) -> c.ReasoningConfig | None:
    if not cfg:
        return None
    budget = cfg.get("thinkingBudget")
    level = cfg.get("thinkingLevel")
    effort = level.lower() if isinstance(level, str) else None
    k.require(
        effort in (None, "minimal", "low", "medium", "high"),
        "thinkingConfig.thinkingLevel",
        f"unknown level {level!r}",
    )
    return c.ReasoningConfig(
        effort=effort,  # type: ignore[arg-type]
        budget_tokens=budget if isinstance(budget, int) and budget > 0 else None,
        include_thoughts=cfg.get("includeThoughts"),
        enabled=False if budget == 0 else True if budget == -1 else None,
    )


# ---------------------------------------------------------------- response: read
def read_response(body: dict[str, Any]) -> c.Response:
    candidates = body.get("candidates") or []
    cand = candidates[0] if candidates else {}
    pending: list[tuple[str, str]] = []
    counter = [0]  # call_<n> counts calls in the response, as the stream decoder does
    raw = (cand.get("content") or {}).get("parts") or []
    parts = [
        part
        for part in _read_parts(raw, "candidates[0].content", pending, counter)
        if isinstance(part, c.Text | c.ToolCall | c.Reasoning)
    ]
    u = body.get("usageMetadata") or {}
    thoughts = u.get("thoughtsTokenCount") or 0
    return c.Response(
        id=str(body.get("responseId", "")),
        model=str(body.get("modelVersion", "")),
        parts=tuple(parts),
        stop_reason=_read_finish(cand, body, parts),
        usage=c.Usage(
            input_tokens=(u.get("promptTokenCount") or 0) + (u.get("toolUsePromptTokenCount") or 0),
            output_tokens=(u.get("candidatesTokenCount") or 0) + thoughts,
            cache_read_tokens=u.get("cachedContentTokenCount") or 0,
            reasoning_tokens=thoughts,
        ),
    )


def _read_finish(cand: dict[str, Any], body: dict[str, Any], parts: list[Any]) -> c.StopReason:
    if not cand and (body.get("promptFeedback") or {}).get("blockReason"):
        return c.StopReason.CONTENT_FILTER
    reason = cand.get("finishReason") or "STOP"
    stop = FINISH_IN.get(reason, c.StopReason.CONTENT_FILTER)
    if stop == c.StopReason.END_TURN and any(isinstance(p, c.ToolCall) for p in parts):
        return c.StopReason.TOOL_USE  # Gemini says STOP after function calls
    return stop
