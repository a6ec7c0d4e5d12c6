"""The fast lane of stream translation: the dominant delta events without generic JSON work.

Nearly every event of a stream is a text delta (or, for coding agents, a tool-argument
fragment). Decoders recognise those by the shape of the raw data string and pull the one
string out with the JSON scanner; encoders write them from byte templates. Everything
else takes the generic path (json.loads, canonical events, dispatch).

Rules:
- A shape matches only data the generic path would read the same way: the decoder's
  `fast()` returns a Delta exactly when its `feed()` would have returned that one
  TextDelta/ToolArgsDelta and made the same state change, else None (then `feed()` runs).
  Shapes are anchored on JSON keys: an unescaped `"` cannot occur inside a JSON string,
  so a key pattern never matches inside a value.
- A shape is written once with `<:>` and `<,>` for the separators and compiled twice:
  compact (`:`, `,`; OpenAI and Anthropic send this) and spaced (`:` and `,` followed by
  any whitespace; Gemini and Python's json.dumps default).
- An encoder's `text()`/`args()` returns the same bytes as `feed()` of the matching
  canonical event.
"""

from __future__ import annotations

import json.decoder
import re
from collections.abc import Callable
from typing import Any, Literal

from core import fastjson

DeltaKind = Literal["text", "args"]
Delta = tuple[DeltaKind, int, str]  # (kind, canonical block index, text or JSON fragment)

# Compact JSON as the encoders write it (non-ASCII as is).
dumps: Callable[[Any], str] = fastjson.dumps_str
string: Callable[[str], str] = json.encoder.encode_basestring

# The C scanner json.loads uses for strings: (text, index after the closing quote).
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


def shape(template: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(compact, spaced) patterns of a shape written with `<:>` and `<,>` (module rules)."""
    compact = template.replace("<:>", ":").replace("<,>", ",")
    spaced = template.replace("<:>", r":\s*").replace("<,>", r",\s*")
    return re.compile(compact), re.compile(spaced)


def string_at(data: str, pos: int) -> tuple[str, int] | None:
    """The JSON string whose opening quote ends just before `pos`, and the index after it;
    None when it is not a valid JSON string (the generic path then reports the error)."""
    try:
        return _scanstring(data, pos)
    except ValueError:
        return None


def closes(data: str, pos: int, tail: str) -> bool:
    """`data` ends at `pos` with `tail` (compact), or with it spread by whitespace."""
    rest = data[pos:]
    return rest == tail or "".join(rest.split()) == tail
