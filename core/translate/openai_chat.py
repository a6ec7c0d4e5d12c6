"""OpenAI Chat Completions bodies <-> canonical (requests and non-stream responses).

Rules:
- system and developer messages, wherever they appear, become the canonical system
  prompt in order (the other dialects have one system slot).
- role "tool" messages become ToolResult parts of one user turn; writing, tool results
  become tool messages right after the assistant turn, and images in a tool result (which
  a tool message cannot hold) follow in a user message.
- Chat has no reasoning replay: canonical Reasoning parts are dropped when writing;
  `reasoning_content` (sent by several compatible servers) is read as visible reasoning.
- Fields without a canonical meaning that change the answer (n > 1, audio, functions)
  raise BadRequest; pure sampling hints (seed, penalties, logprobs, logit_bias) are
  dropped.
- `response_format` json_object / json_schema is canonical structured output (`text`
  is no format). JSON mode written without "JSON" anywhere in the messages gets a system
  hint (OpenAI rejects it otherwise); schemas need an object root (common.openai_schema).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.errors import BadRequest
from core.translate import canonical as c
from core.translate import common as k

FAMILY: k.Family = "openai"
EFFORTS = ("minimal", "low", "medium", "high")

FINISH_IN = {
    "stop": c.StopReason.END_TURN,
    "length": c.StopReason.MAX_TOKENS,
    "tool_calls": c.StopReason.TOOL_USE,
    "function_call": c.StopReason.TOOL_USE,
    "content_filter": c.StopReason.CONTENT_FILTER,
}
FINISH_OUT = {
    c.StopReason.END_TURN: "stop",
    c.StopReason.STOP_SEQUENCE: "stop",
    c.StopReason.MAX_TOKENS: "length",
    c.StopReason.TOOL_USE: "tool_calls",
    c.StopReason.CONTENT_FILTER: "content_filter",
    c.StopReason.REFUSAL: "content_filter",
    c.StopReason.ERROR: "stop",
}
UNSUPPORTED = ("audio", "functions", "function_call", "prediction", "web_search_options")


# ---------------------------------------------------------------- request: read
def read_request(body: dict[str, Any]) -> c.Request:
    _reject_unsupported(body)
    system: list[c.Text] = []
    messages: list[c.Message] = []
    for i, m in enumerate(k.as_list(body.get("messages"), "messages")):
        where = f"messages[{i}]"
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(c.Text(text=k.text_of(m.get("content"), f"{where}.content")))
        elif role == "user":
            messages.append(c.Message(role="user", parts=_read_user(m.get("content"), where)))
        elif role == "assistant":
            messages.append(c.Message(role="assistant", parts=_read_assistant(m, where)))
        elif role == "tool":
            result = c.ToolResult(
                call_id=k.split_signature(str(m.get("tool_call_id", "")))[0],
                content=(c.Text(text=k.text_of(m.get("content"), f"{where}.content")),),
            )
            messages.append(c.Message(role="user", parts=(result,)))
        else:
            raise BadRequest(f"{where}.role: {role!r} messages cannot be translated")
    stop = body.get("stop")
    return c.Request(
        model=str(body.get("model", "")),
        messages=k.with_result_names(k.merge_same_role(messages)),
        system=tuple(system),
        tools=tuple(_read_tool(t, f"tools[{i}]") for i, t in enumerate(body.get("tools") or [])),
        tool_choice=read_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls")),
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
        stream=bool(body.get("stream", False)),
        reasoning=read_effort(body.get("reasoning_effort")),
        user=body.get("user"),
        response_format=_read_format(body.get("response_format")),
    )


def _read_format(fmt: Any) -> c.ResponseFormat | None:
    if fmt is None:
        return None
    kind = k.as_dict(fmt, "response_format").get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return c.ResponseFormat(kind="json_object")
    if kind == "json_schema":
        raw = k.as_dict(fmt.get("json_schema") or {}, "response_format.json_schema")
        return k.read_openai_schema(raw, "response_format.json_schema")
    raise BadRequest(f"response_format.type: {kind!r} cannot be translated")


def _reject_unsupported(body: dict[str, Any]) -> None:
    for key in UNSUPPORTED:
        if body.get(key) is not None:
            raise BadRequest(f"{key}: cannot be translated to another API dialect")
    if (body.get("n") or 1) != 1:
        raise BadRequest("n: only one choice can be translated")


def read_effort(effort: Any) -> c.ReasoningConfig | None:
    if effort is None:
        return None
    if effort == "none":
        return c.ReasoningConfig(enabled=False)
    if effort == "xhigh":
        effort = "high"
    k.require(effort in EFFORTS, "reasoning_effort", f"unknown effort {effort!r}")
    return c.ReasoningConfig(effort=effort)


def _read_user(content: Any, where: str) -> tuple[c.Part, ...]:
    if isinstance(content, str):
        return (c.Text(text=content),)
    parts: list[c.Part] = []
    for j, part in enumerate(k.as_list(content, f"{where}.content")):
        kind = part.get("type")
        if kind == "text":
            parts.append(c.Text(text=part.get("text", "")))
        elif kind == "image_url":
            parts.append(k.image_from_url((part.get("image_url") or {}).get("url", "")))
        else:
            raise BadRequest(f"{where}.content[{j}]: {kind} parts cannot be translated")
    return tuple(parts)


def _read_assistant(m: dict[str, Any], where: str) -> tuple[c.Part, ...]:
    parts: list[c.Part] = []
    if m.get("reasoning_content"):
        parts.append(c.Reasoning(text=m["reasoning_content"]))
    content = m.get("content")
    if isinstance(content, list):  # text and refusal parts
        content = "".join(p.get("text") or p.get("refusal") or "" for p in content)
    if content:
        parts.append(c.Text(text=content))
    for j, call in enumerate(m.get("tool_calls") or []):
        parts.append(_read_call(call, f"{where}.tool_calls[{j}]"))
    return tuple(parts)


def _read_call(call: dict[str, Any], where: str) -> c.ToolCall:
    call_id, sig = k.split_signature(str(call.get("id", "")))
    if call.get("type") == "custom":
        custom = call.get("custom") or {}
        return c.ToolCall(
            id=call_id, name=custom["name"], arguments=custom.get("input", ""), kind="custom"
        )
    fn = call.get("function")
    if not isinstance(fn, dict):
        raise BadRequest(f"{where}.function: missing")
    return c.ToolCall(
        id=call_id, name=fn["name"], arguments=fn.get("arguments") or "{}", signature=sig
    )


def _read_tool(tool: dict[str, Any], where: str) -> c.Tool:
    if tool.get("type") == "custom":
        custom = tool.get("custom") or {}
        return c.Tool(name=custom["name"], description=custom.get("description"), kind="custom")
    fn = tool.get("function")
    if tool.get("type") != "function" or not isinstance(fn, dict):
        raise BadRequest(f"{where}: {tool.get('type')!r} tools cannot be translated")
    return c.Tool(
        name=fn["name"], description=fn.get("description"), parameters=fn.get("parameters")
    )


def read_tool_choice(choice: Any, parallel: Any, *, nested: bool = True) -> c.ToolChoice | None:
    """OpenAI tool_choice (Chat and Responses). A named choice carries its name under the
    kind in Chat (`{"type": "function", "function": {"name"}}`), at the top in Responses."""
    par = parallel if isinstance(parallel, bool) else None
    if choice is None:
        return c.ToolChoice(mode="auto", parallel=par) if par is not None else None
    if isinstance(choice, str):
        modes = {"auto": "auto", "none": "none", "required": "any"}
        k.require(choice in modes, "tool_choice", f"unknown {choice!r}")
        return c.ToolChoice(mode=modes[choice], parallel=par)  # type: ignore[arg-type]
    kind = choice.get("type")
    named = (choice.get(kind) if nested else choice) if kind in ("function", "custom") else None
    if not isinstance(named, dict):
        raise BadRequest(f"tool_choice: {kind!r} cannot be translated")
    return c.ToolChoice(mode="tool", name=named.get("name"), parallel=par)


# ---------------------------------------------------------------- request: write
def write_request(req: c.Request, *, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": []}
    system = k.system_for_json_mode(req)
    if system:
        body["messages"].append({"role": "system", "content": "\n\n".join(t.text for t in system)})
    for msg in req.messages:
        body["messages"].extend(_write_message(msg, to_client=False))
    write_tools(body, req, _write_tool, _write_tool_choice)
    if req.max_tokens is not None:
        body["max_completion_tokens"] = req.max_tokens
    write_sampling(body, req)
    if req.stop:
        body["stop"] = list(req.stop)
    effort = write_effort(req.reasoning)
    if effort:
        body["reasoning_effort"] = effort
    if req.user:
        body["user"] = k.openai_user(req.user)
    if req.response_format:
        body["response_format"] = _write_format(req.response_format)
    if req.stream:  # usage only arrives in a stream when asked for
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _write_format(fmt: c.ResponseFormat) -> dict[str, Any]:
    if fmt.kind == "json_object":
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": k.openai_schema(fmt),
    }


def write_effort(cfg: c.ReasoningConfig | None) -> str | None:
    """Effort as given; a budget maps to the nearest effort; `disabled` sends nothing."""
    if cfg is None or cfg.enabled is False:
        return None
    if cfg.effort:
        return cfg.effort
    if cfg.budget_tokens is not None:
        budget = cfg.budget_tokens
        return "low" if budget <= 4096 else "medium" if budget <= 16384 else "high"
    return "medium" if cfg.enabled else None


def _write_message(msg: c.Message, *, to_client: bool) -> list[dict[str, Any]]:
    if msg.role == "assistant":
        return [_write_assistant(msg.parts, to_client=to_client)]
    out: list[dict[str, Any]] = []
    rest: list[c.Part] = []
    for part in msg.parts:
        if isinstance(part, c.ToolResult):
            text = k.joined_text(part.content)
            out.append({"role": "tool", "tool_call_id": part.call_id, "content": text})
            rest.extend(p for p in part.content if isinstance(p, c.Image))
        else:
            rest.append(part)
    if rest:
        out.append({"role": "user", "content": _user_content(rest)})
    return out


def _user_content(parts: list[c.Part]) -> Any:
    if all(isinstance(p, c.Text) for p in parts):
        return "".join(p.text for p in parts if isinstance(p, c.Text))
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, c.Text):
            out.append({"type": "text", "text": p.text})
        elif isinstance(p, c.Image):
            out.append({"type": "image_url", "image_url": {"url": k.image_url(p)}})
    return out


def _write_assistant(parts: tuple[c.Part, ...], *, to_client: bool) -> dict[str, Any]:
    text = k.joined_text(parts)
    msg: dict[str, Any] = {"role": "assistant", "content": text or None}
    calls = [_write_call(p, to_client=to_client) for p in parts if isinstance(p, c.ToolCall)]
    if calls:
        msg["tool_calls"] = calls
    return msg


def _write_call(call: c.ToolCall, *, to_client: bool) -> dict[str, Any]:
    call_id = k.id_with_signature(call.id, call.signature) if to_client else call.id
    if call.kind == "custom":
        return {
            "id": call_id,
            "type": "custom",
            "custom": {"name": call.name, "input": call.arguments},
        }
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def write_tools(
    body: dict[str, Any],
    req: c.Request,
    write_tool: Callable[[c.Tool], dict[str, Any]],
    write_tool_choice: Callable[[c.ToolChoice, tuple[c.Tool, ...]], Any],
) -> None:
    """`tools`, `tool_choice` and `parallel_tool_calls`, as Chat and Responses both take
    them (each with its own tool and tool_choice forms)."""
    if req.tools:
        body["tools"] = [write_tool(t) for t in req.tools]
        if req.tool_choice:
            body["tool_choice"] = write_tool_choice(req.tool_choice, req.tools)
            if req.tool_choice.parallel is not None and req.tool_choice.mode != "none":
                body["parallel_tool_calls"] = req.tool_choice.parallel
    elif req.tool_choice and req.tool_choice.mode == "none":
        body["tool_choice"] = "none"


def write_sampling(body: dict[str, Any], req: c.Request) -> None:
    for key, value in (("temperature", req.temperature), ("top_p", req.top_p)):
        if value is not None:
            body[key] = value


def _write_tool(tool: c.Tool) -> dict[str, Any]:
    if tool.kind == "custom":
        custom: dict[str, Any] = {"name": tool.name}
        if tool.description:
            custom["description"] = tool.description
        return {"type": "custom", "custom": custom}
    fn: dict[str, Any] = {"name": tool.name}
    if tool.description:
        fn["description"] = tool.description
    fn["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    return {"type": "function", "function": fn}


def _write_tool_choice(choice: c.ToolChoice, tools: tuple[c.Tool, ...]) -> Any:
    if choice.mode == "tool":
        kind = next((t.kind for t in tools if t.name == choice.name), "function")
        return {"type": kind, kind: {"name": choice.name}}
    return {"auto": "auto", "none": "none", "any": "required"}[choice.mode]


# ---------------------------------------------------------------- response
def read_response(body: dict[str, Any]) -> c.Response:
    choices = body.get("choices") or [{}]
    choice = choices[0]
    msg = choice.get("message") or {}
    parts = list(_read_assistant(msg, "choices[0].message"))
    if msg.get("refusal") and not msg.get("content"):
        parts.append(c.Text(text=msg["refusal"]))
    finish = choice.get("finish_reason") or "stop"
    u = body.get("usage") or {}
    return c.Response(
        id=str(body.get("id", "")),
        model=str(body.get("model", "")),
        parts=tuple(p for p in parts if isinstance(p, c.Text | c.ToolCall | c.Reasoning)),
        stop_reason=FINISH_IN.get(finish, c.StopReason.END_TURN),
        usage=c.Usage(
            input_tokens=u.get("prompt_tokens") or 0,
            output_tokens=u.get("completion_tokens") or 0,
            cache_read_tokens=(u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0,
            cache_write_tokens=(u.get("prompt_tokens_details") or {}).get("cache_write_tokens")
            or 0,
            reasoning_tokens=(u.get("completion_tokens_details") or {}).get("reasoning_tokens")
            or 0,
        ),
    )


def write_response(resp: c.Response, *, model: str) -> dict[str, Any]:
    msg = _write_assistant(resp.parts, to_client=True)
    msg["refusal"] = None
    u = resp.usage
    return {
        "id": k.convert_id(resp.id, "chatcmpl-"),
        "object": "chat.completion",
        "created": 0,  # canonical responses carry no clock; the shell may stamp it
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": msg,
                "logprobs": None,
                "finish_reason": FINISH_OUT[resp.stop_reason],
            }
        ],
        "usage": {
            "prompt_tokens": u.input_tokens,
            "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens,
            "prompt_tokens_details": {
                "cached_tokens": u.cache_read_tokens,
                "cache_write_tokens": u.cache_write_tokens,
            },
            "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        },
    }
