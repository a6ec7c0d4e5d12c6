"""JSON schemas across the Gemini boundary, both ways.

Reading (`lower_schema`): Gemini's OpenAPI-subset schemas -> JSON Schema the other dialects
accept. Upper-case type names (OBJECT, STRING) are lowered and `nullable: true` becomes a
`null` member of the type.

Writing (`for_gemini`): any JSON Schema -> the subset Gemini documents for
`parametersJsonSchema`, so one foreign keyword never fails a whole request (agents send
dozens of tools; Claude Code and MCP servers emit draft-07 / 2020-12 schemas):
- kept: type, format (Gemini's formats only), title, description, enum, items,
  prefixItems, minItems, maxItems, minimum, maximum, minLength, maxLength, pattern,
  anyOf, oneOf, properties, additionalProperties, required, minProperties,
  maxProperties, nullable, default, propertyOrdering;
- `const: v` becomes `enum: [v]`, and `allOf` members are merged into their schema
  (properties and required joined), both keeping the meaning;
- local `$ref`s (`#/$defs/...`, `#/definitions/...`) are inlined and the definitions
  dropped; a recursive reference is cut at its second visit into
  `{"type": "object"}` (the model still sees the description);
- everything else is dropped: `$schema`, `$id`, `$comment`, `examples`, `not`,
  `if`/`then`/`else`, `uniqueItems`, `multipleOf`, `exclusiveMinimum`, string
  formats such as `uri`/`email`/`uuid`, ... (validation hints, not meaning).

Rules: only structure is walked (properties, items, anyOf, ...), so a property that is
itself named "type" or "$schema" is never touched.
"""

from __future__ import annotations

from typing import Any

NESTED_MAPS = ("properties", "$defs", "definitions")
NESTED_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")

GEMINI_KEYWORDS = frozenset(
    {
        "type", "format", "title", "description", "enum", "items", "prefixItems",
        "minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength", "pattern",
        "anyOf", "oneOf", "properties", "additionalProperties", "required",
        "minProperties", "maxProperties", "nullable", "default", "propertyOrdering",
    }
)  # fmt: skip
GEMINI_FORMATS = frozenset(
    {"date-time", "date", "time", "enum", "int32", "int64", "float", "double"}
)
RECURSION_STUB: dict[str, Any] = {"type": "object"}


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


def for_gemini(schema: dict[str, Any]) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    for key in ("definitions", "$defs"):
        if isinstance(schema.get(key), dict):
            defs.update({f"#/{key}/{name}": sub for name, sub in schema[key].items()})
    out = _subset(schema, defs, ())
    return out if isinstance(out, dict) else {"type": "object", "properties": {}}


def _subset(schema: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if not isinstance(schema, dict):
        return schema  # `true`/`false` schemas and malformed values: as given
    if isinstance(schema.get("allOf"), list):
        schema = _flatten_all_of(schema)
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if ref in seen or ref not in defs:
            return _with_description(RECURSION_STUB, schema)
        merged = {**defs[ref], **{k: v for k, v in schema.items() if k != "$ref"}}
        return _subset(merged, defs, (*seen, ref))
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "const" and "enum" not in schema:
            out["enum"] = [value]
        elif key not in GEMINI_KEYWORDS or (key == "format" and value not in GEMINI_FORMATS):
            continue
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: _subset(sub, defs, seen) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _subset(value, defs, seen)
        elif key in NESTED_LISTS and isinstance(value, list):
            out[key] = [_subset(sub, defs, seen) for sub in value]
        else:
            out[key] = value
    return out


def _flatten_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    """`allOf` (no Gemini keyword) merged into its schema: properties and required joined,
    other keywords of the first member that has them kept (pydantic wraps refs this way)."""
    out = {k: v for k, v in schema.items() if k != "allOf"}
    for member in schema["allOf"]:
        if not isinstance(member, dict):
            continue
        for key, value in member.items():
            if key == "properties" and isinstance(value, dict):
                out["properties"] = {**value, **out.get("properties", {})}
            elif key == "required" and isinstance(value, list):
                out["required"] = [*out.get("required", []), *value]
            else:
                out.setdefault(key, value)
    return out


def _with_description(stub: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    desc = schema.get("description")
    return {**stub, "description": desc} if isinstance(desc, str) else dict(stub)
