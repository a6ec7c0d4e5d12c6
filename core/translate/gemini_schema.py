"""Gemini's OpenAPI-subset schemas -> JSON Schema the other dialects accept.

Rules: only structure is walked (properties, items, anyOf, ...), so a property that is
itself named "type" is never touched; upper-case type names (OBJECT, STRING) are lowered
and `nullable: true` becomes a `null` member of the type.
"""

from __future__ import annotations

from typing import Any

NESTED_MAPS = ("properties", "$defs", "definitions")
NESTED_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def lower_schema(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = kind.lower()
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    for key in NESTED_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: lower_schema(sub) for name, sub in out[key].items()}
    for key in NESTED_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [lower_schema(sub) for sub in out[key]]
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = lower_schema(out[key])
    return out
