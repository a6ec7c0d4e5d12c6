"""Gemini request field names: both proto-JSON spellings in, camelCase inside.

The Gemini REST API is proto JSON, whose parsers accept a field's lowerCamelCase name and
its original snake_case name alike, and google-genai really sends both in one body (for
example `inlineData.mime_type`, `parameters_json_schema`, `thinkingConfig.include_thoughts`).
The Gemini reader calls `camel_request` once so the rest of it reads one spelling.

Rules:
- Only field names are renamed; values a user owns keep their keys: function call `args`,
  function `response`, JSON schemas (`parametersJsonSchema`, `responseJsonSchema`) and
  the property names, defaults and examples inside an OpenAPI `parameters` schema.
- Keys starting with `$` are JSON Schema keywords, never renamed.
"""

from __future__ import annotations

from typing import Any

# Field values that are user data (Struct / JSON Schema): kept exactly as sent.
OPAQUE = frozenset(
    {"args", "response", "parametersJsonSchema", "responseJsonSchema", "labels", "structValue"}
)
# Field values that are a Gemini OpenAPI-subset Schema: renamed with camel_schema.
SCHEMAS = frozenset({"parameters", "responseSchema"})
SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties"})
SCHEMA_VALUES = frozenset({"default", "example", "examples", "enum", "const"})


def camel(key: str) -> str:
    """`mime_type` -> `mimeType`; camelCase and `$keywords` are returned unchanged."""
    if "_" not in key or key.startswith("$"):
        return key
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def camel_request(value: Any) -> Any:
    """A Gemini request body (or any part of one) with camelCase field names."""
    if isinstance(value, list):
        return [camel_request(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, sub in value.items():
        name = camel(key)
        if name in OPAQUE:
            out[name] = sub
        elif name in SCHEMAS:
            out[name] = camel_schema(sub)
        else:
            out[name] = camel_request(sub)
    return out


def camel_schema(schema: Any) -> Any:
    """An OpenAPI-subset Schema with camelCase keywords; property names are kept."""
    if isinstance(schema, list):
        return [camel_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, sub in schema.items():
        name = camel(key)
        if name in SCHEMA_MAPS and isinstance(sub, dict):
            out[name] = {prop: camel_schema(s) for prop, s in sub.items()}
        elif name in SCHEMA_VALUES:
            out[name] = sub
        else:
            out[name] = camel_schema(sub)
    return out
