"""The canonical model every dialect is translated through.

Rules:
- Frozen, slotted, keyword-only dataclasses; no I/O, no clocks.
- It holds the meaning shared by the four APIs. Fields one API has and another lacks are
  kept in `extra` only when a reader of the same dialect can restore them (round trips);
  a writer never invents meaning from `extra` of another dialect.
- Tool call arguments are kept as a JSON string (`arguments`), the form streams deliver.
- Ids: tool call ids pair calls with results across turns. Gemini has no ids on older
  models; readers synthesise stable ones (`call_<index>`), writers keep what they are given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


# ---------------------------------------------------------------- content parts
@dataclass(frozen=True, slots=True, kw_only=True)
class Text:
    text: str
    cache_control: dict[str, Any] | None = None  # Anthropic prompt caching marker


@dataclass(frozen=True, slots=True, kw_only=True)
class Image:
    media_type: str | None = None  # "image/png"
    data: str | None = None  # base64, when inline
    url: str | None = None  # when by reference (https: or data:)


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text of the arguments object
    kind: Literal["function", "custom"] = "function"  # OpenAI Responses custom tools: raw input
    signature: str | None = None  # Gemini thoughtSignature attached to the call part


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResult:
    call_id: str
    name: str | None = None  # Gemini needs the function name; readers fill it when known
    content: tuple[Text | Image, ...] = ()
    is_error: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Reasoning:
    text: str = ""  # visible thinking / summary text
    signature: str | None = None  # Anthropic thinking signature, Gemini thoughtSignature
    redacted: str | None = None  # Anthropic redacted_thinking data, OpenAI encrypted_content
    id: str | None = None  # OpenAI reasoning item id


Part = Text | Image | ToolCall | ToolResult | Reasoning


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    role: Literal["user", "assistant"]
    parts: tuple[Part, ...]


# ---------------------------------------------------------------- request
@dataclass(frozen=True, slots=True, kw_only=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # JSON schema of the arguments object
    kind: Literal["function", "custom"] = "function"


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolChoice:
    mode: Literal["auto", "any", "none", "tool"]
    name: str | None = None  # for mode "tool"
    parallel: bool | None = None  # None = provider default


@dataclass(frozen=True, slots=True, kw_only=True)
class ReasoningConfig:
    effort: Literal["minimal", "low", "medium", "high"] | None = None
    budget_tokens: int | None = None  # Anthropic budget_tokens / Gemini thinkingBudget
    include_thoughts: bool | None = None
    enabled: bool | None = None  # False = explicitly off


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseFormat:
    """Structured output: the answer's text is JSON (json_object), or JSON valid against
    `schema` (json_schema). Chat `response_format`, Responses `text.format`, Gemini
    `responseMimeType` + `responseJsonSchema`/`responseSchema`, Anthropic
    `output_config.format` (read) or a forced tool (written; anthropic.py)."""

    kind: Literal["json_object", "json_schema"]
    schema: dict[str, Any] | None = None  # JSON Schema (json_schema only), any root type
    name: str | None = None  # OpenAI's schema name
    description: str | None = None
    strict: bool | None = None  # OpenAI strict mode; None = not said


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    model: str
    messages: tuple[Message, ...]
    system: tuple[Text, ...] = ()
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    reasoning: ReasoningConfig | None = None
    user: str | None = None  # Anthropic metadata.user_id / OpenAI user
    response_format: ResponseFormat | None = None  # None = free text
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- response
class StopReason(StrEnum):
    END_TURN = "end_turn"
    MAX_TOKENS = "max_tokens"
    STOP_SEQUENCE = "stop_sequence"
    TOOL_USE = "tool_use"
    CONTENT_FILTER = "content_filter"
    REFUSAL = "refusal"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    input_tokens: int = 0  # all prompt tokens, cached ones included
    output_tokens: int = 0  # reasoning tokens included
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    id: str
    model: str
    parts: tuple[Text | ToolCall | Reasoning, ...]
    stop_reason: StopReason = StopReason.END_TURN
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)


# ---------------------------------------------------------------- stream events
# A stream is: Start, then blocks (BlockStart, deltas, BlockStop) indexed from 0 in order,
# then Finish, then End; or an ErrorEvent at any point. Usage may arrive in Start (input)
# and in Finish (final, cumulative). Opaque reasoning tokens follow the body rules of
# common.py: decoders tag them with their family, encoders emit them for their client.


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    id: str
    model: str
    usage: Usage | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockStart:
    index: int
    kind: Literal["text", "tool_call", "reasoning"]
    tool_id: str | None = None  # tool_call only
    tool_name: str | None = None
    tool_kind: Literal["function", "custom"] = "function"
    signature: str | None = None  # tool_call only: Gemini thoughtSignature (as ToolCall.signature)


@dataclass(frozen=True, slots=True, kw_only=True)
class TextDelta:
    index: int
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolArgsDelta:
    index: int
    partial_json: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReasoningDelta:
    index: int
    text: str = ""
    signature: str | None = None
    redacted: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockStop:
    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Finish:
    stop_reason: StopReason
    stop_sequence: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class End:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorEvent:
    kind: str  # a core.errors kind: "overloaded", "rate_limited", "upstream", ...
    message: str


StreamEvent = (
    Start
    | BlockStart
    | TextDelta
    | ToolArgsDelta
    | ReasoningDelta
    | BlockStop
    | Finish
    | End
    | ErrorEvent
)
