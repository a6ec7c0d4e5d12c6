"""Gemini generateContent bodies <-> canonical (requests and non-stream responses).

Rules:
- The model comes from the URL path, never the body. Streaming is chosen by the URL too;
  the proxy may put `"stream": true` into the body it hands to `read_request`.
- Roles user/model alternate: consecutive same-role turns are merged when writing.
- Calls without ids get `call_<n>` (n counts calls in the request); a functionResponse
  without id pairs with the oldest unanswered call of the same name. Writing, results
  need the function name, recovered from the call with the same id.
- A functionResponse `response` object is canonical text (its `output` string when that
  is all it holds, else its JSON); canonical results are written as {"output": text}
  ({"error": text} when is_error), per the Gemini function-calling docs.
- thoughtSignature: on thought parts it is the Reasoning signature, on functionCall parts
  the ToolCall signature. A signature-only Reasoning (what the stream decoder makes of a
  signature on a plain part) is re-attached to the part that follows it. Gemini 3 wants a
  signature on the first call of each model step: history from another family gets the
  documented validator-skip value instead.
- Field names: both proto-JSON spellings are read (`inline_data` = `inlineData`,
  gemini_fields.py); camelCase is written.
- Schemas: written as `parametersJsonSchema`, reduced to the JSON Schema subset Gemini
  documents (gemini_schema.for_gemini); read from either field, OpenAPI upper-case type
  names lowered so other dialects accept them.
- Dropped on purpose: safetySettings, hosted tools (googleSearch, codeExecution, ...),
  `parallel` tool choice, `user` (no Gemini field), redacted reasoning of other families.
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
from core.translate.gemini_schema import for_gemini, lower_schema

FAMILY: k.Family = "gemini"
SKIP_SIGNATURE = "skip_thought_signature_validator"  # Gemini docs: history from other models
EFFORT_BUDGET = {"minimal": 512, "low": 2048, "medium": 8192, "high": 24576}
FINISH_IN = {
    "STOP": c.StopReason.END_TURN,
    "MAX_TOKENS": c.StopReason.MAX_TOKENS,
    "MALFORMED_FUNCTION_CALL": c.StopReason.ERROR,
    "UNEXPECTED_TOOL_CALL": c.StopReason.ERROR,
    "OTHER": c.StopReason.END_TURN,
    "FINISH_REASON_UNSPECIFIED": c.StopReason.END_TURN,
}  # every other reason (SAFETY, RECITATION, BLOCKLIST, SPII, ...) is a content filter
FINISH_OUT = {
    c.StopReason.END_TURN: "STOP",
    c.StopReason.STOP_SEQUENCE: "STOP",
    c.StopReason.TOOL_USE: "STOP",
    c.StopReason.MAX_TOKENS: "MAX_TOKENS",
    c.StopReason.CONTENT_FILTER: "SAFETY",
    c.StopReason.REFUSAL: "SAFETY",
    c.StopReason.ERROR: "OTHER",
}


# ---------------------------------------------------------------- request: read
def read_request(body: dict[str, Any], *, model: str = "") -> c.Request:
    body = camel_request(body)  # google-genai mixes snake_case and camelCase field names
    if body.get("cachedContent"):
        raise BadRequest("cachedContent: server-side caches cannot be translated")
    gen = body.get("generationConfig") or {}
    if (gen.get("candidateCount") or 1) != 1:
        raise BadRequest("generationConfig.candidateCount: only one candidate can be translated")
    if gen.get("responseSchema") or gen.get("responseJsonSchema"):
        raise BadRequest("generationConfig.responseSchema: structured output cannot be translated")
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
    )


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


# ---------------------------------------------------------------- request: write
def write_request(req: c.Request, *, model: str) -> dict[str, Any]:
    messages = k.merge_same_role(k.with_result_names(req.messages))
    body: dict[str, Any] = {
        "contents": [_write_content(m, i, model) for i, m in enumerate(messages)]
    }
    if req.system:
        body["systemInstruction"] = {"parts": [{"text": t.text} for t in req.system]}
    if req.tools:
        body["tools"] = [{"functionDeclarations": [_write_tool(t) for t in req.tools]}]
    if req.tool_choice and (req.tools or req.tool_choice.mode == "none"):
        body["toolConfig"] = {"functionCallingConfig": _write_tool_choice(req.tool_choice)}
    gen: dict[str, Any] = {}
    for key, value in (
        ("temperature", req.temperature),
        ("topP", req.top_p),
        ("topK", req.top_k),
        ("maxOutputTokens", req.max_tokens),
    ):
        if value is not None:
            gen[key] = value
    if req.stop:
        gen["stopSequences"] = list(req.stop)
    thinking = _write_thinking(req.reasoning, model)
    if thinking:
        gen["thinkingConfig"] = thinking
    if gen:
        body["generationConfig"] = gen
    return body


def _write_content(msg: c.Message, index: int, model: str) -> dict[str, Any]:
    role = "model" if msg.role == "assistant" else "user"
    parts: list[dict[str, Any]] = []
    carried: str | None = None  # a signature-only Reasoning waits for the next part
    for part in msg.parts:
        if isinstance(part, c.Reasoning) and not part.text:
            carried = _token(part, to_client=False) or carried
            continue
        for out in _write_part(part, index, to_client=False):
            if carried and "thought" not in out and "thoughtSignature" not in out:
                out["thoughtSignature"], carried = carried, None
            parts.append(out)
    if carried:
        parts.append({"thought": True, "text": "", "thoughtSignature": carried})
    if role == "model" and model.startswith("gemini-3"):
        _sign_first_call(parts)
    return {"role": role, "parts": parts or [{"text": ""}]}


def _sign_first_call(parts: list[dict[str, Any]]) -> None:
    """Gemini 3 rejects an unsigned first call of a step (history from another family)."""
    calls = [p for p in parts if "functionCall" in p]
    if calls and not any("thoughtSignature" in p for p in calls):
        calls[0]["thoughtSignature"] = SKIP_SIGNATURE


def _write_part(part: c.Part, index: int, *, to_client: bool) -> list[dict[str, Any]]:
    if isinstance(part, c.Text):
        return [{"text": part.text}]
    if isinstance(part, c.Image):
        return [_write_image(part)]
    if isinstance(part, c.ToolCall):
        args = {"input": part.arguments} if part.kind == "custom" else k.parse_args(part.arguments)
        out: dict[str, Any] = {"functionCall": {"id": part.id, "name": part.name, "args": args}}
        if part.signature:
            out["thoughtSignature"] = part.signature
        return [out]
    if isinstance(part, c.ToolResult):
        return _write_result(part, index)
    sig = _token(part, to_client=to_client)
    if sig is None and not (to_client and part.text):
        return []  # a thought Gemini cannot verify is not replayed; redacted has no field
    thought: dict[str, Any] = {"thought": True, "text": part.text}
    if sig is not None:
        thought["thoughtSignature"] = write_signature(sig)
    return [thought]


def _token(part: c.Reasoning, *, to_client: bool) -> str | None:
    """The thoughtSignature to write. A Responses client hands a Gemini signature back as
    encrypted_content, which its reader keeps as `redacted`: still Gemini's to replay."""
    sig = k.emit_token(part.signature, FAMILY, to_client=to_client)
    if sig is None and part.redacted and k.token_family(part.redacted) == FAMILY:
        sig = k.emit_token(part.redacted, FAMILY, to_client=to_client)
    return sig


def write_signature(token: str) -> str:
    """Gemini SDKs decode thoughtSignature as bytes: foreign tokens travel base64-wrapped."""
    if token.startswith(k.TAG):
        return base64.b64encode(token.encode()).decode()
    return token


def _write_image(img: c.Image) -> dict[str, Any]:
    if img.data is not None:
        return {"inlineData": {"mimeType": img.media_type or "image/png", "data": img.data}}
    mime = img.media_type or "image/" + ((img.url or "").rsplit(".", 1)[-1].lower() or "png")
    if mime == "image/jpg":
        mime = "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": img.url or ""}}


def _write_result(part: c.ToolResult, index: int) -> list[dict[str, Any]]:
    if not part.name:
        raise BadRequest(
            f"messages[{index}]: tool result {part.call_id!r} has no matching call; "
            "a gemini upstream needs the function name"
        )
    text = k.joined_text(part.content)
    response = {"error": text} if part.is_error else {"output": text}
    fr = {"id": part.call_id, "name": part.name, "response": response}
    # Images a tool returned follow the response in the same user turn.
    return [{"functionResponse": fr}] + [
        _write_image(p) for p in part.content if isinstance(p, c.Image)
    ]


def _write_tool(tool: c.Tool) -> dict[str, Any]:
    if tool.kind == "custom":
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {"input": {"type": "string"}},
            "required": ["input"],
        }
    else:
        schema = tool.parameters or {"type": "object", "properties": {}}
    out: dict[str, Any] = {"name": tool.name}
    if tool.description:
        out["description"] = tool.description
    out["parametersJsonSchema"] = for_gemini(schema)
    return out


def _write_tool_choice(choice: c.ToolChoice) -> dict[str, Any]:
    if choice.mode == "tool":
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    return {"mode": {"auto": "AUTO", "any": "ANY", "none": "NONE"}[choice.mode]}


def _write_thinking(cfg: c.ReasoningConfig | None, model: str) -> dict[str, Any] | None:
    if cfg is None:
        return None
    out: dict[str, Any] = {}
    if cfg.enabled is False:
        out["thinkingBudget"] = 0
    elif cfg.budget_tokens is not None:
        out["thinkingBudget"] = cfg.budget_tokens
    elif cfg.effort and model.startswith("gemini-3"):
        out["thinkingLevel"] = cfg.effort  # levels are Gemini 3 only
    elif cfg.effort:
        out["thinkingBudget"] = EFFORT_BUDGET[cfg.effort]
    elif cfg.enabled:
        out["thinkingBudget"] = -1  # dynamic
    include = cfg.include_thoughts if cfg.include_thoughts is not None else cfg.enabled
    if include and cfg.enabled is not False:
        out["includeThoughts"] = True
    return out or None


# ---------------------------------------------------------------- response
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


def write_response(resp: c.Response, *, model: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    for part in resp.parts:
        for out in _write_part(part, 0, to_client=True):
            parts.append(out)
    u = resp.usage
    usage: dict[str, Any] = {
        "promptTokenCount": u.input_tokens,
        "candidatesTokenCount": max(0, u.output_tokens - u.reasoning_tokens),
        "totalTokenCount": u.input_tokens + u.output_tokens,
    }
    if u.cache_read_tokens:
        usage["cachedContentTokenCount"] = u.cache_read_tokens
    if u.reasoning_tokens:
        usage["thoughtsTokenCount"] = u.reasoning_tokens
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts or [{"text": ""}]},
                "finishReason": FINISH_OUT[resp.stop_reason],
                "index": 0,
            }
        ],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": resp.id,
    }
