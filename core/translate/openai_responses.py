"""OpenAI Responses bodies <-> canonical (requests and non-stream responses).

Rules:
- `instructions` and system/developer input messages become the canonical system prompt.
- Input items map one to one: message, function_call(_output), custom_tool_call(_output)
  (Codex's free-form tools), reasoning (summary + encrypted_content, replayed only to
  OpenAI). Server-side state cannot travel: `previous_response_id`, `conversation` and
  item references raise BadRequest; `store` is dropped (the writer sends store=false and
  asks for encrypted reasoning so a stateless replay works).
- Hosted tools (web_search, file_search, ...) are dropped from the tool list: no other
  dialect can run them, and the conversation keeps its meaning without them.
- Responses has no stop sequences: writing a request with any raises BadRequest.
- `text.format` json_object / json_schema is canonical structured output (rules as
  openai_chat.py: JSON mode hint, object root); `text.verbosity` is dropped.
- Codex's `local_shell` tool and its `local_shell_call` items raise BadRequest: the client
  runs them, but only in that shape, so a call from another model could not reach it
  (Codex uses the function `shell` tool with every other model).
"""

from __future__ import annotations

from typing import Any

from core.errors import BadRequest
from core.translate import canonical as c
from core.translate import common as k
from core.translate.openai_chat import (
    read_effort,
    read_tool_choice,
    write_effort,
    write_sampling,
    write_tools,
)

FAMILY: k.Family = "openai"
STATEFUL = ("previous_response_id", "conversation", "prompt")


# ---------------------------------------------------------------- request: read
def read_request(body: dict[str, Any]) -> c.Request:
    for key in STATEFUL:
        if body.get(key):
            raise BadRequest(f"{key}: server-side state cannot be translated to another API")
    system = [c.Text(text=body["instructions"])] if body.get("instructions") else []
    messages: list[c.Message] = []
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    for i, item in enumerate(k.as_list(items, "input")):
        msg = _read_item(item, f"input[{i}]")
        if isinstance(msg, c.Text):
            system.append(msg)
        else:
            messages.append(msg)
    reasoning = body.get("reasoning") or {}
    cfg = read_effort(reasoning.get("effort"))
    if reasoning.get("summary"):
        cfg = c.ReasoningConfig(
            effort=cfg.effort if cfg else None,
            enabled=cfg.enabled if cfg else None,
            include_thoughts=True,
        )
    tools = [t for i, t in enumerate(body.get("tools") or []) if _is_callable(t, f"tools[{i}]")]
    return c.Request(
        model=str(body.get("model", "")),
        messages=k.with_result_names(k.merge_same_role(messages)),
        system=tuple(system),
        tools=tuple(_read_tool(t) for t in tools),
        tool_choice=read_tool_choice(
            body.get("tool_choice"), body.get("parallel_tool_calls"), nested=False
        ),
        max_tokens=body.get("max_output_tokens"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stream=bool(body.get("stream", False)),
        reasoning=cfg,
        user=body.get("user") or body.get("safety_identifier"),
        response_format=_read_format((body.get("text") or {}).get("format")),
    )


def _read_format(fmt: Any) -> c.ResponseFormat | None:
    if fmt is None:
        return None
    kind = k.as_dict(fmt, "text.format").get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return c.ResponseFormat(kind="json_object")
    if kind == "json_schema":
        return k.read_openai_schema(fmt, "text.format")
    raise BadRequest(f"text.format.type: {kind!r} cannot be translated")


def _read_item(item: dict[str, Any], where: str) -> c.Message | c.Text:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role in ("system", "developer"):
            return c.Text(text=k.text_of(item.get("content"), f"{where}.content"))
        return c.Message(
            role=k.role_of(role, f"{where}.role"),
            parts=_read_content(item.get("content"), f"{where}.content"),
        )
    if kind in ("function_call", "custom_tool_call"):
        return c.Message(role="assistant", parts=(_read_call(item),))
    if kind in ("function_call_output", "custom_tool_call_output"):
        output = item.get("output")
        content = _read_content(output, f"{where}.output")
        result = c.ToolResult(
            call_id=k.split_signature(str(item.get("call_id", "")))[0],
            content=content,
        )
        return c.Message(role="user", parts=(result,))
    if kind == "reasoning":
        return c.Message(role="assistant", parts=(_read_reasoning(item),))
    if kind in ("local_shell_call", "local_shell_call_output"):
        raise BadRequest(f"{where}: {LOCAL_SHELL}")
    raise BadRequest(f"{where}: {kind} items cannot be translated to another API dialect")


def _read_content(content: Any, where: str) -> tuple[c.Text | c.Image, ...]:
    if isinstance(content, str):
        return (c.Text(text=content),)
    parts: list[c.Text | c.Image] = []
    for j, part in enumerate(k.as_list(content, where)):
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append(c.Text(text=part.get("text", "")))
        elif kind == "refusal":
            parts.append(c.Text(text=part.get("refusal", "")))
        elif kind == "input_image" and part.get("image_url"):
            parts.append(k.image_from_url(part["image_url"]))
        else:
            raise BadRequest(f"{where}[{j}]: {kind} parts cannot be translated")
    return tuple(parts)


def _read_call(item: dict[str, Any]) -> c.ToolCall:
    call_id, sig = k.split_signature(str(item.get("call_id", "")))
    if item["type"] == "custom_tool_call":
        return c.ToolCall(
            id=call_id, name=item["name"], arguments=item.get("input", ""), kind="custom"
        )
    return c.ToolCall(
        id=call_id, name=item["name"], arguments=item.get("arguments") or "{}", signature=sig
    )


def _read_reasoning(item: dict[str, Any]) -> c.Reasoning:
    texts = [s.get("text", "") for s in item.get("summary") or []]
    if not texts:
        texts = [s.get("text", "") for s in item.get("content") or []]
    return c.Reasoning(
        text="\n\n".join(texts),
        redacted=k.tag(item.get("encrypted_content"), FAMILY),
        id=item.get("id"),
    )


LOCAL_SHELL = (
    "local_shell runs in the client only as a Responses-native tool; "
    "use a model whose Codex shell tool is the function `shell`"
)


def _is_callable(tool: dict[str, Any], where: str) -> bool:
    """Function and custom tools translate; hosted tools are dropped (module rules)."""
    if tool.get("type") == "local_shell":
        raise BadRequest(f"{where}: {LOCAL_SHELL}")
    return tool.get("type") in ("function", "custom")


def _read_tool(tool: dict[str, Any]) -> c.Tool:
    if tool["type"] == "custom":
        return c.Tool(name=tool["name"], description=tool.get("description"), kind="custom")
    return c.Tool(
        name=tool["name"], description=tool.get("description"), parameters=tool.get("parameters")
    )


# ---------------------------------------------------------------- request: write
def write_request(req: c.Request, *, model: str) -> dict[str, Any]:
    if req.stop:
        raise BadRequest("stop_sequences: an openai-responses upstream has no stop sequences")
    body: dict[str, Any] = {"model": model}
    system = k.system_for_json_mode(req)
    if system:
        body["instructions"] = "\n\n".join(t.text for t in system)
    kinds: dict[str, str] = {
        p.id: p.kind for m in req.messages for p in m.parts if isinstance(p, c.ToolCall)
    }
    body["input"] = [item for m in req.messages for item in _write_items(m, kinds)]
    write_tools(body, req, _write_tool, _write_tool_choice)
    if req.max_tokens is not None:
        body["max_output_tokens"] = req.max_tokens
    write_sampling(body, req)
    effort = write_effort(req.reasoning)
    if effort or (req.reasoning and req.reasoning.include_thoughts):
        body["reasoning"] = {"effort": effort or "medium"}
        if req.reasoning and req.reasoning.include_thoughts is not False:
            body["reasoning"]["summary"] = "auto"
    if req.user:
        body["user"] = k.openai_user(req.user)
    if req.response_format:
        body["text"] = {"format": _write_format(req.response_format)}
    body["store"] = False  # stateless: the whole history travels in `input`
    if effort or any(i.get("type") == "reasoning" for i in body["input"]):
        body["include"] = ["reasoning.encrypted_content"]
    if req.stream:
        body["stream"] = True
    return body


def _write_format(fmt: c.ResponseFormat) -> dict[str, Any]:
    if fmt.kind == "json_object":
        return {"type": "json_object"}
    return {"type": "json_schema", **k.openai_schema(fmt)}


def _write_items(msg: c.Message, kinds: dict[str, str]) -> list[dict[str, Any]]:
    """One item per call, result and reasoning; adjacent text and images share a message."""
    items: list[dict[str, Any]] = []
    for part in msg.parts:
        if isinstance(part, c.Text | c.Image):
            last = items[-1] if items else None
            if last and last["type"] == "message":
                last["content"].append(_content_part(part, msg.role))
                continue
            items.append(
                {"type": "message", "role": msg.role, "content": [_content_part(part, msg.role)]}
            )
        elif (item := _write_item(part, kinds)) is not None:
            items.append(item)
    return items


def _write_item(part: c.Part, kinds: dict[str, str]) -> dict[str, Any] | None:
    if isinstance(part, c.ToolCall):
        return write_call(part, to_client=False)
    if isinstance(part, c.ToolResult):
        kind = "custom_tool_call_output" if kinds.get(part.call_id) == "custom" else None
        output: Any = [_content_part(p, "user") for p in part.content]
        if all(isinstance(p, c.Text) for p in part.content):
            output = k.joined_text(part.content)
        return {"type": kind or "function_call_output", "call_id": part.call_id, "output": output}
    if isinstance(part, c.Reasoning):
        return write_reasoning(part, to_client=False)
    return None  # text and images are grouped by _write_items


def _content_part(part: c.Part, role: str) -> dict[str, Any]:
    if isinstance(part, c.Image):
        return {"type": "input_image", "image_url": k.image_url(part), "detail": "auto"}
    text = part.text if isinstance(part, c.Text) else ""
    return {"type": "output_text" if role == "assistant" else "input_text", "text": text}


def write_call(call: c.ToolCall, *, to_client: bool) -> dict[str, Any]:
    call_id = k.id_with_signature(call.id, call.signature) if to_client else call.id
    if call.kind == "custom":
        out = {"type": "custom_tool_call", "call_id": call_id, "name": call.name}
        return out | {"input": call.arguments}
    return {"type": "function_call", "call_id": call_id, "name": call.name} | {
        "arguments": call.arguments
    }


def write_reasoning(part: c.Reasoning, *, to_client: bool) -> dict[str, Any] | None:
    token = k.emit_token(part.redacted, FAMILY, to_client=to_client) or k.emit_token(
        part.signature, FAMILY, to_client=to_client
    )
    if token is None and not (to_client and part.text):
        return None  # nothing OpenAI can replay
    item: dict[str, Any] = {"type": "reasoning"}
    if part.id:
        item["id"] = part.id
    item["summary"] = [{"type": "summary_text", "text": part.text}] if part.text else []
    if token is not None:
        item["encrypted_content"] = token
    return item


def _write_tool(tool: c.Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"type": tool.kind, "name": tool.name}
    if tool.description:
        out["description"] = tool.description
    if tool.kind == "function":
        out["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    return out


def _write_tool_choice(choice: c.ToolChoice, tools: tuple[c.Tool, ...]) -> Any:
    if choice.mode == "tool":
        kind = next((t.kind for t in tools if t.name == choice.name), "function")
        return {"type": kind, "name": choice.name}
    return {"auto": "auto", "none": "none", "any": "required"}[choice.mode]


# ---------------------------------------------------------------- response
def read_response(body: dict[str, Any]) -> c.Response:
    parts: list[c.Text | c.ToolCall | c.Reasoning] = []
    for i, item in enumerate(body.get("output") or []):
        kind = item.get("type")
        if kind == "message":
            parts.extend(_read_content(item.get("content") or [], f"output[{i}].content"))  # type: ignore[arg-type]
        elif kind in ("function_call", "custom_tool_call"):
            parts.append(_read_call(item))
        elif kind == "reasoning":
            parts.append(_read_reasoning(item))
        # hosted tool items (web_search_call, ...) ran upstream; their text follows them
    u = body.get("usage") or {}
    return c.Response(
        id=str(body.get("id", "")),
        model=str(body.get("model", "")),
        parts=tuple(parts),
        stop_reason=_read_status(body, parts),
        usage=c.Usage(
            input_tokens=u.get("input_tokens") or 0,
            output_tokens=u.get("output_tokens") or 0,
            cache_read_tokens=(u.get("input_tokens_details") or {}).get("cached_tokens") or 0,
            cache_write_tokens=(u.get("input_tokens_details") or {}).get("cache_write_tokens") or 0,
            reasoning_tokens=(u.get("output_tokens_details") or {}).get("reasoning_tokens") or 0,
        ),
    )


def _read_status(body: dict[str, Any], parts: list[Any]) -> c.StopReason:
    status = body.get("status") or "completed"
    if status == "incomplete":
        reason = (body.get("incomplete_details") or {}).get("reason")
        if reason == "content_filter":
            return c.StopReason.CONTENT_FILTER
        return c.StopReason.MAX_TOKENS
    if status == "failed":
        return c.StopReason.ERROR
    if any(isinstance(p, c.ToolCall) for p in parts):
        return c.StopReason.TOOL_USE
    return c.StopReason.END_TURN


def write_response(resp: c.Response, *, model: str) -> dict[str, Any]:
    rid = k.convert_id(resp.id, "resp_")
    output: list[dict[str, Any]] = []
    for part in resp.parts:
        if isinstance(part, c.Text):
            if output and output[-1]["type"] == "message":  # one message, several texts
                output[-1]["content"].append(_output_text(part.text))
                continue
            output.append(
                {
                    "type": "message",
                    "id": f"msg_{rid[5:]}_{len(output)}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [_output_text(part.text)],
                }
            )
        elif isinstance(part, c.ToolCall):
            call = write_call(part, to_client=True)
            output.append({"id": f"fc_{part.id}"} | call | {"status": "completed"})
        elif (thought := write_reasoning(part, to_client=True)) is not None:
            thought.setdefault("id", f"rs_{rid[5:]}_{len(output)}")
            output.append(thought)
    status, details = "completed", None
    if resp.stop_reason == c.StopReason.MAX_TOKENS:
        status, details = "incomplete", {"reason": "max_output_tokens"}
    elif resp.stop_reason in (c.StopReason.CONTENT_FILTER, c.StopReason.REFUSAL):
        status, details = "incomplete", {"reason": "content_filter"}
    elif resp.stop_reason == c.StopReason.ERROR:
        status = "failed"
    u = resp.usage
    return {
        "id": rid,
        "object": "response",
        "created_at": 0,  # canonical responses carry no clock; the shell may stamp it
        "status": status,
        "error": None,
        "incomplete_details": details,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": u.input_tokens,
            "input_tokens_details": {
                "cached_tokens": u.cache_read_tokens,
                "cache_write_tokens": u.cache_write_tokens,
            },
            "output_tokens": u.output_tokens,
            "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
            "total_tokens": u.input_tokens + u.output_tokens,
        },
    }


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}
