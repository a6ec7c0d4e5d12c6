"""Structured output to an Anthropic upstream, as a forced tool, and its answer read back.

Rules:
- A JSON schema (or JSON mode) is written as a forced tool, the portable technique every
  Claude model with tools supports, for any schema and for JSON mode (native
  `output_config.format` is limited to recent models, needs `additionalProperties: false`
  on every object and has no JSON mode): a tool `ccx_json_response` whose input_schema is
  the schema (`{"type": "object"}` for JSON mode), or `ccx_json_value` wrapping a
  non-object schema as its `value` property; tool_choice forces it, or is `any` when the
  client's own tools are offered too (the model then calls a tool or answers), so
  thinking is dropped as for any forced tool.
- Reading a response, a call to either tool is the answer's JSON text, and a turn whose
  only call was that one ends as end_turn (`JsonAnswerStream` does the same for
  streams). A client tool with one of those names is refused with a 400.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from core.translate import canonical as c
from core.translate import common as k

# The forced tools that carry structured output to an Anthropic upstream (module rules).
JSON_TOOL = "ccx_json_response"  # input_schema is the answer's (object) schema
JSON_VALUE_TOOL = "ccx_json_value"  # input {"value": answer}, for non-object schemas
JSON_TOOLS = frozenset({JSON_TOOL, JSON_VALUE_TOOL})
JSON_TOOL_DESCRIPTION = (
    "Give your final answer by calling this tool: its input is the answer. "
    "Answer only through this tool, once, when you have no other tool to call."
)
OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}


def format_of_tool(tool: dict[str, Any]) -> c.ResponseFormat:
    """The response format a request's own forced tool stands for (round trips)."""
    schema = tool.get("input_schema") or OBJECT_SCHEMA
    if tool.get("name") == JSON_VALUE_TOOL:
        schema = (schema.get("properties") or {}).get("value") or {}
    desc = tool.get("description") or ""
    desc = (
        desc[len(JSON_TOOL_DESCRIPTION) :].strip()
        if desc.startswith(JSON_TOOL_DESCRIPTION)
        else desc
    )
    if schema == OBJECT_SCHEMA:
        return c.ResponseFormat(kind="json_object")
    return c.ResponseFormat(kind="json_schema", schema=schema, description=desc or None)


def force_json_tool(body: dict[str, Any], req: c.Request) -> None:
    """Structured output as a forced tool (module rules)."""
    fmt = req.response_format
    assert fmt is not None
    for tool in req.tools:
        k.require(
            tool.name not in JSON_TOOLS,
            f"tools: {tool.name}",
            "the name is reserved for structured output to an anthropic upstream",
        )
    schema = OBJECT_SCHEMA if fmt.kind == "json_object" else fmt.schema or OBJECT_SCHEMA
    name = JSON_TOOL
    if not k.object_root(schema):
        name = JSON_VALUE_TOOL
        schema = {"type": "object", "properties": {"value": schema}, "required": ["value"]}
    desc = JSON_TOOL_DESCRIPTION + (f"\n\n{fmt.description}" if fmt.description else "")
    body.setdefault("tools", []).append({"name": name, "description": desc, "input_schema": schema})
    choice = body.get("tool_choice") or {"type": "auto"}
    if choice["type"] == "none" or not req.tools:
        choice = {"type": "tool", "name": name}  # no other tool may be called: answer now
    elif choice["type"] == "auto":
        choice = {**choice, "type": "any"}  # a tool call or the answer, never free text
    body["tool_choice"] = choice


def json_answer(call: c.ToolCall) -> c.Text | c.ToolCall:
    """A call to the structured-output tool -> the answer's JSON text; others as given."""
    if call.name == JSON_TOOL:
        return c.Text(text=call.arguments)
    if call.name == JSON_VALUE_TOOL:
        return c.Text(text=_value_text(call.arguments))
    return call


def _value_text(arguments: str) -> str:
    """`{"value": X}` -> X as JSON text; other shapes (max tokens cut them) as given."""
    args = k.parse_args(arguments)
    if set(args) == {"value"}:
        return json.dumps(args["value"], ensure_ascii=False, separators=(",", ":"))
    return arguments


class JsonAnswerStream:
    """Canonical stream events from an Anthropic upstream, with a streamed call to the
    structured-output tool turned back into the answer's text (read_response's rule).

    Same contract as custom_tools.StreamRestorer: `feed` rewrites decoded events, and
    `claims(index)` says the argument fragments of that block must take the canonical
    path (not a fast lane that copies them as tool arguments).
    """

    def __init__(self) -> None:
        self._open: dict[int, list[str] | None] = {}  # index -> value buffer, None = direct
        self._answered = False
        self._other_calls = False

    def claims(self, index: int) -> bool:
        return index in self._open

    def feed(self, events: list[c.StreamEvent]) -> list[c.StreamEvent]:
        return [out for event in events for out in self._one(event)]

    def _one(self, event: c.StreamEvent) -> list[c.StreamEvent]:
        if isinstance(event, c.BlockStart):
            if event.kind != "tool_call":
                return [event]
            if event.tool_name not in JSON_TOOLS:
                self._other_calls = True
                return [event]
            self._answered = True
            self._open[event.index] = [] if event.tool_name == JSON_VALUE_TOOL else None
            return [c.BlockStart(index=event.index, kind="text")]
        if isinstance(event, c.ToolArgsDelta) and event.index in self._open:
            buffer = self._open[event.index]
            if buffer is not None:
                buffer.append(event.partial_json)
                return []
            text = event.partial_json
            return [c.TextDelta(index=event.index, text=text)] if text else []
        if isinstance(event, c.BlockStop) and event.index in self._open:
            buffer = self._open.pop(event.index)
            if buffer is None:
                return [event]
            return [c.TextDelta(index=event.index, text=_value_text("".join(buffer))), event]
        if isinstance(event, c.Finish) and self._only_answer(event.stop_reason):
            return [replace(event, stop_reason=c.StopReason.END_TURN)]
        return [event]

    def _only_answer(self, stop: c.StopReason) -> bool:
        """The turn stopped for tool use, and its only call was the answer."""
        return stop == c.StopReason.TOOL_USE and self._answered and not self._other_calls
