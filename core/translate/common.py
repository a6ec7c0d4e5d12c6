"""Helpers shared by the four body translators (anthropic, openai_chat, openai_responses, gemini).

Rules:
- Pure functions on plain values; no I/O.
- Opaque reasoning tokens (Anthropic thinking signatures and redacted data, OpenAI
  encrypted_content, Gemini thoughtSignature) only replay to the family that minted them.
  In the canonical model they are tagged `ccx:<family>:<raw>`: readers tag untagged
  tokens with their own family (a tagged one came back through a foreign client and stays
  as is). Writers emit the raw token to their own family, the tagged token to a client of
  another family (so the next turn brings it back), and drop it for an upstream of another
  family (it cannot be replayed there). Gemini clients see the tagged form base64-encoded,
  because their SDKs decode thoughtSignature as bytes.
- A Gemini function-call thoughtSignature has no field in the other dialects' tool calls;
  responses to such clients carry it inside the tool-call id (`<id>__ccxsig__<b64url>`),
  which every client echoes back with the result. Readers split it off again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from typing import Any, Literal

from core.errors import BadRequest
from core.translate import canonical as c

Family = Literal["anthropic", "openai", "gemini"]
TAG = "ccx:"
SIG_SEP = "__ccxsig__"


# ---------------------------------------------------------------- opaque reasoning tokens
def tag(token: str | None, family: Family) -> str | None:
    """Reader side: a token from `family`'s wire form -> canonical (tagged) form."""
    if not token or token.startswith(TAG):
        return token or None
    return f"{TAG}{family}:{token}"


def token_family(token: str) -> Family | None:
    if token.startswith(TAG):
        fam = token[len(TAG) :].split(":", 1)[0]
        if fam in ("anthropic", "openai", "gemini"):
            return fam  # type: ignore[return-value]
    return None


def emit_token(token: str | None, family: Family, *, to_client: bool) -> str | None:
    """Writer side: the raw token for its own family, the tagged one for a client of
    another family (it comes back next turn), nothing for an upstream of another family."""
    if token is None:
        return None
    owner = token_family(token)
    if owner is None or owner == family:
        return token.split(":", 2)[2] if owner else token
    return token if to_client else None


# ---------------------------------------------------------------- gemini signatures in ids
def id_with_signature(call_id: str, signature: str | None) -> str:
    if not signature:
        return call_id
    packed = base64.urlsafe_b64encode(signature.encode()).decode().rstrip("=")
    return f"{call_id}{SIG_SEP}{packed}"


def split_signature(call_id: str) -> tuple[str, str | None]:
    if SIG_SEP not in call_id:
        return call_id, None
    base, packed = call_id.split(SIG_SEP, 1)
    try:
        sig = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return call_id, None
    return base, sig


# ---------------------------------------------------------------- end-user ids
OPENAI_USER_MAX = 64  # OpenAI rejects longer end-user identifiers


def openai_user(user: str) -> str:
    """An end-user id OpenAI accepts: as given when short, else a stable digest (Claude
    Code's `metadata.user_id` is about 150 characters; a digest keeps it one id)."""
    if len(user) <= OPENAI_USER_MAX:
        return user
    return "ccx-" + hashlib.sha256(user.encode()).hexdigest()[: OPENAI_USER_MAX - 4]


# ---------------------------------------------------------------- images
def parse_data_url(url: str) -> tuple[str, str] | None:
    """`data:image/png;base64,AAAA` -> ("image/png", "AAAA"); None for other URLs."""
    if not url.startswith("data:") or ";base64," not in url:
        return None
    head, data = url[5:].split(";base64,", 1)
    return head or "application/octet-stream", data


def image_from_url(url: str) -> c.Image:
    parsed = parse_data_url(url)
    if parsed:
        return c.Image(media_type=parsed[0], data=parsed[1])
    return c.Image(url=url)


def image_url(img: c.Image) -> str:
    """An image as one URL string (data: URL when inline)."""
    if img.data is not None:
        return f"data:{img.media_type or 'image/png'};base64,{img.data}"
    return img.url or ""


# ---------------------------------------------------------------- json and text
def parse_args(arguments: str) -> dict[str, Any]:
    """Tool arguments JSON text -> object; non-object or broken JSON is wrapped, not lost."""
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_value": value}


def dump_args(value: Any) -> str:
    if value is None:
        return "{}"
    if isinstance(value, dict) and set(value) == {"_raw"} and isinstance(value["_raw"], str):
        return value["_raw"]
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def joined_text(parts: Iterable[c.Part]) -> str:
    return "".join(p.text for p in parts if isinstance(p, c.Text))


def text_of(content: Any, where: str) -> str:
    """A string or a list of text parts (OpenAI style) -> one string."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for i, part in enumerate(content):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise BadRequest(f"{where}[{i}]: only text is allowed here, got {kind!r}")
        return "".join(out)
    raise BadRequest(f"{where}: expected a string or a list of text parts")


# ---------------------------------------------------------------- message shaping
def merge_same_role(messages: Iterable[c.Message]) -> tuple[c.Message, ...]:
    """Merge consecutive messages of one role: Anthropic and Gemini require alternation."""
    out: list[c.Message] = []
    for msg in messages:
        if out and out[-1].role == msg.role:
            out[-1] = c.Message(role=msg.role, parts=out[-1].parts + msg.parts)
        else:
            out.append(msg)
    return tuple(out)


def tool_names_by_id(messages: Iterable[c.Message]) -> dict[str, str]:
    """Function names of earlier calls, to name results where the target needs it (Gemini)."""
    names: dict[str, str] = {}
    for msg in messages:
        for part in msg.parts:
            if isinstance(part, c.ToolCall):
                names[part.id] = part.name
    return names


def with_result_names(messages: tuple[c.Message, ...]) -> tuple[c.Message, ...]:
    """Fill ToolResult.name from the call with the same id when a reader could not."""
    names = tool_names_by_id(messages)
    out = []
    for msg in messages:
        parts = tuple(
            c.ToolResult(
                call_id=p.call_id,
                name=names.get(p.call_id),
                content=p.content,
                is_error=p.is_error,
            )
            if isinstance(p, c.ToolResult) and p.name is None and p.call_id in names
            else p
            for p in msg.parts
        )
        out.append(c.Message(role=msg.role, parts=parts))
    return tuple(out)


def convert_id(upstream_id: str, prefix: str) -> str:
    """Keep the upstream id, in the shape the client expects (msg_, chatcmpl-, resp_)."""
    if not upstream_id:
        return prefix + "ccx"
    return upstream_id if upstream_id.startswith(prefix) else prefix + upstream_id


def role_of(value: Any, where: str) -> Literal["user", "assistant"]:
    if value == "user":
        return "user"
    if value == "assistant":
        return "assistant"
    raise BadRequest(f"{where}: unknown role {value!r}")


def require(cond: bool, where: str, why: str) -> None:
    if not cond:
        raise BadRequest(f"{where}: {why}")


def as_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{where}: expected a list")
    return value


def as_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{where}: expected an object")
    return value


# ---------------------------------------------------------------- structured output
FORMAT_NAME = "response"  # OpenAI requires a schema name; Gemini and Anthropic have none
JSON_HINT = "Answer in JSON."  # OpenAI JSON mode requires the word "JSON" in the context


def object_root(schema: dict[str, Any] | None) -> bool:
    """The schema describes a JSON object at its root (OpenAI and tool inputs need one)."""
    return schema is None or schema.get("type") == "object"


def format_name(fmt: c.ResponseFormat) -> str:
    return fmt.name or FORMAT_NAME


def system_for_json_mode(req: c.Request) -> tuple[c.Text, ...]:
    """The system prompt an OpenAI upstream gets: OpenAI rejects JSON mode (json_object)
    unless "JSON" appears in the messages, which Gemini and Anthropic never required, so
    a one-line hint is added when no text says it."""
    fmt = req.response_format
    if fmt is None or fmt.kind != "json_object":
        return req.system
    texts = [t.text for t in req.system]
    texts += [p.text for m in req.messages for p in m.parts if isinstance(p, c.Text)]
    if any("json" in t.lower() for t in texts):
        return req.system
    return (*req.system, c.Text(text=JSON_HINT))


def openai_schema(fmt: c.ResponseFormat) -> dict[str, Any]:
    """The json_schema of an OpenAI request (Chat nests it, Responses flattens it)."""
    schema = fmt.schema or {"type": "object"}
    require(
        object_root(schema),
        "response schema",
        "an OpenAI upstream needs an object at its root (structured outputs)",
    )
    out: dict[str, Any] = {"name": format_name(fmt)}
    if fmt.description:
        out["description"] = fmt.description
    out["schema"] = schema
    if fmt.strict is not None:
        out["strict"] = fmt.strict
    return out


def read_openai_schema(raw: dict[str, Any], where: str) -> c.ResponseFormat:
    """Chat `json_schema` object / Responses `text.format` -> canonical. A json_schema
    without a schema asks for any JSON: JSON mode."""
    schema = raw.get("schema")
    if schema is None:
        return c.ResponseFormat(kind="json_object", name=raw.get("name"))
    require(isinstance(schema, dict), f"{where}.schema", "expected a JSON Schema object")
    strict = raw.get("strict")
    return c.ResponseFormat(
        kind="json_schema",
        schema=schema,
        name=raw.get("name"),
        description=raw.get("description"),
        strict=strict if isinstance(strict, bool) else None,
    )
