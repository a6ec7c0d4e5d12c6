"""Anthropic Messages bodies <-> canonical (requests and non-stream responses).

Rules:
- `system` (string or text blocks), text/image/tool_use/tool_result/thinking/
  redacted_thinking blocks map both ways; `cache_control` rides on canonical Text.
- Blocks with no canonical meaning (document, server tools and their results, search
  results, container uploads) raise BadRequest naming the field: only another dialect
  reads this module's output, and dropping them would change the conversation.
- Thinking blocks replay only when their signature was minted by Anthropic (common.py).
- Canonical input_tokens counts every prompt token; Anthropic's `input_tokens` excludes
  cache reads and writes, so the two are converted with the cache counts.
- Structured output is read from `output_config.format` (and the beta `output_format`)
  `{"type": "json_schema", "schema"}` and written as a forced tool (anthropic_json.py).
"""

from __future__ import annotations

from typing import Any

from core.errors import BadRequest
from core.translate import canonical as c
from core.translate import common as k
from core.translate.anthropic_json import (
    JSON_TOOLS,
    force_json_tool,
    format_of_tool,
    json_answer,
)

FAMILY: k.Family = "anthropic"
DEFAULT_MAX_TOKENS = 8192  # Anthropic requires max_tokens; other dialects may omit it
THINKING_MAX_TOKENS = 32000  # ... with thinking on: what every thinking Claude model allows
ANSWER_ROOM = 8192  # of those, kept for the answer when the budget came from an effort
# effort -> budget_tokens when only an effort is given (budget minimum is 1024)
EFFORT_BUDGET = {"minimal": 1024, "low": 4096, "medium": 10000, "high": 32000}

STOP_IN = {
    "end_turn": c.StopReason.END_TURN,
    "max_tokens": c.StopReason.MAX_TOKENS,
    "stop_sequence": c.StopReason.STOP_SEQUENCE,
    "tool_use": c.StopReason.TOOL_USE,
    "pause_turn": c.StopReason.END_TURN,
    "refusal": c.StopReason.REFUSAL,
    "model_context_window_exceeded": c.StopReason.MAX_TOKENS,
}
STOP_OUT = {
    c.StopReason.END_TURN: "end_turn",
    c.StopReason.MAX_TOKENS: "max_tokens",
    c.StopReason.STOP_SEQUENCE: "stop_sequence",
    c.StopReason.TOOL_USE: "tool_use",
    c.StopReason.CONTENT_FILTER: "refusal",
    c.StopReason.REFUSAL: "refusal",
    c.StopReason.ERROR: "end_turn",
}


# ---------------------------------------------------------------- request: read
def read_request(body: dict[str, Any]) -> c.Request:
    messages = tuple(
        _read_message(m, f"messages[{i}]")
        for i, m in enumerate(k.as_list(body.get("messages"), "messages"))
    )
    # Server tools (web_search_..., code_execution_...) run at Anthropic only: dropped.
    raw_tools = [
        t for t in k.as_list(body.get("tools"), "tools") if t.get("type") in (None, "custom")
    ]
    fmt = _read_format(body)
    choice = _read_tool_choice(body.get("tool_choice"))
    json_tool = next((t for t in raw_tools if t.get("name") in JSON_TOOLS), None)
    if json_tool is not None:  # this module's own forced tool, read back (round trips)
        fmt = fmt or format_of_tool(json_tool)
        raw_tools.remove(json_tool)
        if choice and choice.mode == "tool" and choice.name in JSON_TOOLS:
            choice = None
    return c.Request(
        model=str(body.get("model", "")),
        messages=k.with_result_names(messages),
        system=_read_system(body.get("system")),
        tools=tuple(_read_tool(t) for t in raw_tools),
        tool_choice=choice,
        response_format=fmt,
        max_tokens=body.get("max_tokens"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        top_k=body.get("top_k"),
        stop=tuple(body.get("stop_sequences") or ()),
        stream=bool(body.get("stream", False)),
        reasoning=_read_thinking(body.get("thinking")),
        user=(body.get("metadata") or {}).get("user_id"),
    )


def _read_format(body: dict[str, Any]) -> c.ResponseFormat | None:
    """`output_config.format` (GA) or the beta `output_format`: a JSON schema."""
    config = body.get("output_config")
    fmt, where = None, "output_format"
    if isinstance(config, dict) and config.get("format") is not None:
        fmt, where = config["format"], "output_config.format"
    elif body.get("output_format") is not None:
        fmt = body["output_format"]
    if fmt is None:
        return None
    fmt = k.as_dict(fmt, where)
    k.require(fmt.get("type") == "json_schema", f"{where}.type", f"unknown {fmt.get('type')!r}")
    schema = k.as_dict(fmt.get("schema"), f"{where}.schema")
    return c.ResponseFormat(kind="json_schema", schema=schema)


def _read_system(system: Any) -> tuple[c.Text, ...]:
    if system is None or system == "":
        return ()
    if isinstance(system, str):
        return (c.Text(text=system),)
    out = []
    for i, block in enumerate(k.as_list(system, "system")):
        k.require(block.get("type") == "text", f"system[{i}]", "only text blocks are allowed")
        out.append(c.Text(text=block["text"], cache_control=block.get("cache_control")))
    return tuple(out)


def _read_message(msg: dict[str, Any], where: str) -> c.Message:
    role = k.role_of(msg.get("role"), f"{where}.role")
    content = msg.get("content")
    if isinstance(content, str):
        return c.Message(role=role, parts=(c.Text(text=content),))
    parts = tuple(
        _read_block(b, f"{where}.content[{j}]")
        for j, b in enumerate(k.as_list(content, f"{where}.content"))
    )
    return c.Message(role=role, parts=parts)


def _read_block(block: dict[str, Any], where: str) -> c.Part:
    kind = block.get("type")
    if kind == "text":
        return c.Text(text=block.get("text", ""), cache_control=block.get("cache_control"))
    if kind == "image":
        return _read_image(block, where)
    if kind == "tool_use":
        call_id, sig = k.split_signature(str(block.get("id", "")))
        return c.ToolCall(
            id=call_id,
            name=block["name"],
            arguments=k.dump_args(block.get("input")),
            signature=sig,
        )
    if kind == "tool_result":
        return _read_tool_result(block, where)
    if kind == "thinking":
        return c.Reasoning(
            text=block.get("thinking", ""), signature=k.tag(block.get("signature"), FAMILY)
        )
    if kind == "redacted_thinking":
        return c.Reasoning(redacted=k.tag(block.get("data"), FAMILY))
    raise BadRequest(f"{where}: {kind} blocks cannot be translated to another API dialect")


def _read_image(block: dict[str, Any], where: str) -> c.Image:
    src = block.get("source") or {}
    if src.get("type") == "base64":
        return c.Image(media_type=src.get("media_type"), data=src.get("data"))
    if src.get("type") == "url":
        return k.image_from_url(src["url"])
    raise BadRequest(f"{where}.source: {src.get('type')!r} images cannot be translated")


def _read_tool_result(block: dict[str, Any], where: str) -> c.ToolResult:
    content = block.get("content")
    parts: list[c.Text | c.Image] = []
    if isinstance(content, str):
        parts.append(c.Text(text=content))
    else:
        for j, b in enumerate(k.as_list(content, f"{where}.content")):
            part = _read_block(b, f"{where}.content[{j}]")
            k.require(isinstance(part, c.Text | c.Image), f"{where}.content[{j}]", "text or image")
            parts.append(part)  # type: ignore[arg-type]
    call_id, _ = k.split_signature(str(block.get("tool_use_id", "")))
    return c.ToolResult(call_id=call_id, content=tuple(parts), is_error=bool(block.get("is_error")))


def _read_tool(tool: dict[str, Any]) -> c.Tool:
    return c.Tool(
        name=tool["name"], description=tool.get("description"), parameters=tool.get("input_schema")
    )


def _read_tool_choice(choice: Any) -> c.ToolChoice | None:
    if not choice:
        return None
    parallel = False if choice.get("disable_parallel_tool_use") else None
    mode = choice.get("type")
    k.require(mode in ("auto", "any", "tool", "none"), "tool_choice.type", f"unknown {mode!r}")
    return c.ToolChoice(mode=mode, name=choice.get("name"), parallel=parallel)


def _read_thinking(thinking: Any) -> c.ReasoningConfig | None:
    if not thinking:
        return None
    if thinking.get("type") == "disabled":
        return c.ReasoningConfig(enabled=False)
    return c.ReasoningConfig(enabled=True, budget_tokens=thinking.get("budget_tokens"))


# ---------------------------------------------------------------- request: write
def write_request(req: c.Request, *, model: str) -> dict[str, Any]:
    # Anthropic requires max_tokens and counts thinking in it. A client that set none
    # (Codex, Gemini CLI) gets room for thinking plus an answer, not an 8192 total.
    thinking = _write_thinking(req.reasoning, req.max_tokens or THINKING_MAX_TOKENS - ANSWER_ROOM)
    wants = bool(thinking and thinking["type"] == "enabled")
    default = THINKING_MAX_TOKENS if wants else DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {"model": model, "max_tokens": req.max_tokens or default}
    if req.system:
        body["system"] = _write_system(req.system)
    body["messages"] = [_write_message(m, to_client=False) for m in k.merge_same_role(req.messages)]
    if req.tools:
        body["tools"] = [_write_tool(t) for t in req.tools]
    if req.tool_choice and (req.tools or req.tool_choice.mode == "none"):
        body["tool_choice"] = _write_tool_choice(req.tool_choice)
    if req.response_format:
        force_json_tool(body, req)
    if thinking and "tool_choice" in body and body["tool_choice"]["type"] in ("any", "tool"):
        thinking = None  # Anthropic rejects thinking with forced tool use: the choice wins
        body["max_tokens"] = req.max_tokens or DEFAULT_MAX_TOKENS
    if thinking:
        body["thinking"] = thinking
    # Extended thinking rejects temperature/top_k changes: they are dropped with it on.
    thinking_on = bool(thinking and thinking["type"] == "enabled")
    for key, value in (
        ("temperature", None if thinking_on else req.temperature),
        ("top_p", req.top_p),
        ("top_k", None if thinking_on else req.top_k),
    ):
        if value is not None:
            body[key] = value
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if req.stream:
        body["stream"] = True
    return body


def _write_system(system: tuple[c.Text, ...]) -> Any:
    if len(system) == 1 and system[0].cache_control is None:
        return system[0].text
    return [_text_block(t) for t in system]


def _text_block(t: c.Text) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": t.text}
    if t.cache_control:
        block["cache_control"] = t.cache_control
    return block


def _write_message(msg: c.Message, *, to_client: bool) -> dict[str, Any]:
    # Anthropic wants tool results first in a user turn.
    parts = sorted(msg.parts, key=lambda p: not isinstance(p, c.ToolResult))
    blocks = [b for p in parts if (b := write_block(p, to_client=to_client)) is not None]
    if not blocks:
        blocks = [{"type": "text", "text": ""}]
    return {"role": msg.role, "content": blocks}


def write_block(part: c.Part, *, to_client: bool) -> dict[str, Any] | None:
    """One canonical part -> one content block (None: a reasoning part that cannot replay)."""
    if isinstance(part, c.Text):
        return _text_block(part)
    if isinstance(part, c.Image):
        return _write_image(part)
    if isinstance(part, c.ToolCall):
        call_id = k.id_with_signature(part.id, part.signature) if to_client else part.id
        args = {"input": part.arguments} if part.kind == "custom" else k.parse_args(part.arguments)
        return {"type": "tool_use", "id": call_id, "name": part.name, "input": args}
    if isinstance(part, c.ToolResult):
        return _write_tool_result(part)
    return _write_reasoning(part, to_client=to_client)


def _write_image(img: c.Image) -> dict[str, Any]:
    if img.data is not None:
        source = {"type": "base64", "media_type": img.media_type or "image/png", "data": img.data}
    else:
        source = {"type": "url", "url": img.url or ""}
    return {"type": "image", "source": source}


def _write_tool_result(part: c.ToolResult) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.call_id}
    if len(part.content) == 1 and isinstance(part.content[0], c.Text):
        block["content"] = part.content[0].text
    else:
        block["content"] = [
            _text_block(p) if isinstance(p, c.Text) else _write_image(p) for p in part.content
        ]
    if part.is_error:
        block["is_error"] = True
    return block


def _write_reasoning(part: c.Reasoning, *, to_client: bool) -> dict[str, Any] | None:
    sig = k.emit_token(part.signature, FAMILY, to_client=to_client)
    red = k.emit_token(part.redacted, FAMILY, to_client=to_client)
    if sig is not None:
        return {"type": "thinking", "thinking": part.text, "signature": sig}
    if red is not None and not part.text:
        return {"type": "redacted_thinking", "data": red}
    if red is not None:  # visible summary plus a foreign opaque token (client side only)
        return {"type": "thinking", "thinking": part.text, "signature": red}
    if to_client and part.text:
        return {"type": "thinking", "thinking": part.text, "signature": ""}
    return None  # an unsigned thought cannot be replayed to Anthropic


def _write_tool(tool: c.Tool) -> dict[str, Any]:
    if tool.kind == "custom":  # free-form input becomes one string argument
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {"input": {"type": "string"}},
            "required": ["input"],
        }
    else:
        schema = tool.parameters or {"type": "object", "properties": {}}
    out: dict[str, Any] = {"name": tool.name, "input_schema": schema}
    if tool.description:
        out["description"] = tool.description
    return out


def _write_tool_choice(choice: c.ToolChoice) -> dict[str, Any]:
    out: dict[str, Any] = {"type": choice.mode}
    if choice.mode == "tool":
        out["name"] = choice.name
    if choice.parallel is False and choice.mode != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _write_thinking(cfg: c.ReasoningConfig | None, max_tokens: int) -> dict[str, Any] | None:
    if cfg is None:
        return None
    if cfg.enabled is False or (cfg.effort == "minimal" and cfg.budget_tokens is None):
        return {"type": "disabled"} if cfg.enabled is False else None
    budget = cfg.budget_tokens
    if budget is None and cfg.effort:
        budget = EFFORT_BUDGET[cfg.effort]
    if budget is None:
        return {"type": "enabled", "budget_tokens": min(EFFORT_BUDGET["medium"], max_tokens - 1)}
    budget = min(budget, max_tokens - 1)  # Anthropic requires budget < max_tokens
    return {"type": "enabled", "budget_tokens": budget} if budget >= 1024 else None


# ---------------------------------------------------------------- response
def read_response(body: dict[str, Any]) -> c.Response:
    parts: list[c.Text | c.ToolCall | c.Reasoning] = []
    for j, block in enumerate(body.get("content") or []):
        part = _read_block(block, f"content[{j}]")
        k.require(not isinstance(part, c.Image | c.ToolResult), f"content[{j}]", "unexpected")
        parts.append(part)  # type: ignore[arg-type]
    u = body.get("usage") or {}
    cache_read = u.get("cache_read_input_tokens") or 0
    cache_write = u.get("cache_creation_input_tokens") or 0
    stop = STOP_IN.get(body.get("stop_reason") or "end_turn", c.StopReason.END_TURN)
    if any(isinstance(p, c.ToolCall) and p.name in JSON_TOOLS for p in parts):
        parts = [json_answer(p) if isinstance(p, c.ToolCall) else p for p in parts]
        if stop == c.StopReason.TOOL_USE and not any(isinstance(p, c.ToolCall) for p in parts):
            stop = c.StopReason.END_TURN  # the answer was the only call: the turn is over
    return c.Response(
        id=str(body.get("id", "")),
        model=str(body.get("model", "")),
        parts=tuple(parts),
        stop_reason=stop,
        stop_sequence=body.get("stop_sequence"),
        usage=c.Usage(
            input_tokens=(u.get("input_tokens") or 0) + cache_read + cache_write,
            output_tokens=u.get("output_tokens") or 0,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        ),
    )


def write_response(resp: c.Response, *, model: str) -> dict[str, Any]:
    content = [b for p in resp.parts if (b := write_block(p, to_client=True)) is not None]
    u = resp.usage
    return {
        "id": k.convert_id(resp.id, "msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_OUT[resp.stop_reason],
        "stop_sequence": resp.stop_sequence,
        "usage": {
            "input_tokens": max(0, u.input_tokens - u.cache_read_tokens - u.cache_write_tokens),
            "output_tokens": u.output_tokens,
            "cache_creation_input_tokens": u.cache_write_tokens,
            "cache_read_input_tokens": u.cache_read_tokens,
        },
    }
