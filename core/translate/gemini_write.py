"""Canonical -> Gemini generateContent bodies: requests and non-stream responses.

Rules: see gemini.py (the facade that re-exports this module's public names).
"""

from __future__ import annotations

import base64
from typing import Any

from core.errors import BadRequest
from core.translate import canonical as c
from core.translate import common as k
from core.translate.gemini_schema import for_gemini

FAMILY: k.Family = "gemini"
SKIP_SIGNATURE = "skip_thought_signature_validator"  # Gemini docs: history from other models
EFFORT_BUDGET = {"minimal": 512, "low": 2048, "medium": 8192, "high": 24576}
FINISH_OUT = {
    c.StopReason.END_TURN: "STOP",
    c.StopReason.STOP_SEQUENCE: "STOP",
    c.StopReason.TOOL_USE: "STOP",
    c.StopReason.MAX_TOKENS: "MAX_TOKENS",
    c.StopReason.CONTENT_FILTER: "SAFETY",
    c.StopReason.REFUSAL: "SAFETY",
    c.StopReason.ERROR: "OTHER",
}


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
    if req.response_format:
        gen["responseMimeType"] = "application/json"
        if req.response_format.kind == "json_schema" and req.response_format.schema is not None:
            gen["responseJsonSchema"] = for_gemini(req.response_format.schema)
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
    return reasoning_token(part.signature, part.redacted, to_client=to_client)


def reasoning_token(signature: str | None, redacted: str | None, *, to_client: bool) -> str | None:
    """The thoughtSignature to write for a thought (bodies and streams).

    A Responses client hands a Gemini signature back as encrypted_content, which its
    reader keeps as `redacted`: still Gemini's to replay. OpenAI's encrypted_content is
    `redacted` too: a Gemini client carries it (tagged) so the next turn replays it to
    OpenAI, whose writers take it from either field. Anthropic redacted_thinking data is
    not a signature: it would come back as one, so it is not written.
    """
    sig = k.emit_token(signature, FAMILY, to_client=to_client)
    if sig is None and redacted and k.token_family(redacted) != "anthropic":
        sig = k.emit_token(redacted, FAMILY, to_client=to_client)
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


# ---------------------------------------------------------------- response: write
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
