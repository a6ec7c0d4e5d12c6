"""A local token estimate for count_tokens when the upstream has no count endpoint (OpenAI).

Rule (documented in the README, "Cross-dialect translation"): read the body into the
canonical model, then count ceil(chars / 4) over every text the model sees (system,
message text, tool call arguments, tool results, reasoning text, tool names, descriptions and JSON
schemas), plus 4 tokens per message, 8 per tool, 3 for the reply primer, and a flat 85
per image (a low-detail tile; real image costs vary by provider and size).
"""

from __future__ import annotations

import json
import math
from typing import Any

from core.dialects import Dialect
from core.translate import canonical as c
from core.translate.gemini_fields import camel_request

PER_MESSAGE = 4
PER_TOOL = 8
PRIMER = 3
PER_IMAGE = 85


def estimate_count_tokens(body: dict[str, Any], *, src: Dialect) -> int:
    from core.translate.api import read_request  # api imports this module

    if src == Dialect.GEMINI:
        body = camel_request(body)  # proto JSON: snake_case field names are valid too
        body = body.get("generateContentRequest") or body
    req = read_request({**body, "max_tokens": body.get("max_tokens") or 1}, src)
    chars = sum(len(t.text) for t in req.system)
    tokens = PRIMER + (PER_MESSAGE if req.system else 0)
    for msg in req.messages:
        tokens += PER_MESSAGE
        for part in msg.parts:
            n, images = _part_size(part)
            chars += n
            tokens += images * PER_IMAGE
    for tool in req.tools:
        tokens += PER_TOOL
        chars += len(tool.name) + len(tool.description or "")
        chars += len(json.dumps(tool.parameters)) if tool.parameters else 0
    return tokens + math.ceil(chars / 4)


def _part_size(part: c.Part) -> tuple[int, int]:
    """(characters, images) of one part."""
    if isinstance(part, c.Text):
        return len(part.text), 0
    if isinstance(part, c.Image):
        return 0, 1
    if isinstance(part, c.ToolCall):
        return len(part.name) + len(part.arguments), 0
    if isinstance(part, c.ToolResult):
        sizes = [_part_size(p) for p in part.content]
        return sum(s[0] for s in sizes), sum(s[1] for s in sizes)
    return len(part.text), 0
