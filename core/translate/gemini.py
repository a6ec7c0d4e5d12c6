"""Gemini generateContent bodies <-> canonical (requests and non-stream responses).

Reading is gemini_read.py, writing gemini_write.py; this module names the rules both
follow and re-exports their public names.

Rules:
- The model comes from the URL path, never the body. Streaming is chosen by the URL too;
  the proxy may put `"stream": true` into the body it hands to `read_request`.
- Roles user/model alternate: consecutive same-role turns are merged when writing.
- Calls without ids get `call_<n>` (n counts calls in the request); a functionResponse
  without id pairs with the oldest unanswered call of the same name. Writing, results
  need the function name, recovered from the call with the same id.
- A functionResponse `response` object is canonical text (its `output` string when that
  is all it holds, else its JSON); canonical results are written as {"output": text}
  ({"error": text} when is_error), per the Gemini function-calling docs.
- thoughtSignature: on thought parts it is the Reasoning signature, on functionCall parts
  the ToolCall signature. A signature-only Reasoning (what the stream decoder makes of a
  signature on a plain part) is re-attached to the part that follows it. Gemini 3 wants a
  signature on the first call of each model step: history from another family gets the
  documented validator-skip value instead.
- Field names: both proto-JSON spellings are read (`inline_data` = `inlineData`,
  gemini_fields.py); camelCase is written.
- Schemas: written as `parametersJsonSchema`, reduced to the JSON Schema subset Gemini
  documents (gemini_schema.for_gemini); read from either field, OpenAPI upper-case type
  names lowered so other dialects accept them.
- Structured output: `responseMimeType: application/json` alone is JSON mode; with
  `responseJsonSchema` or `responseSchema` (OpenAPI subset) it is a json_schema format,
  upper-case type names lowered in both (Gemini CLI sends `OBJECT` in the JSON one).
  Written as responseMimeType + `responseJsonSchema` reduced by for_gemini; a schema's
  name, description and strict flag have no Gemini field.
  `text/x.enum` (a bare enum answer) raises BadRequest.
- Dropped on purpose: safetySettings, hosted tools (googleSearch, codeExecution, ...),
  `parallel` tool choice, `user` (no Gemini field), redacted reasoning of other families.
"""

from __future__ import annotations

from core.translate.gemini_read import (
    FAMILY,
    FINISH_IN,
    read_request,
    read_response,
    read_signature,
)
from core.translate.gemini_write import (
    EFFORT_BUDGET,
    FINISH_OUT,
    SKIP_SIGNATURE,
    reasoning_token,
    write_request,
    write_response,
    write_signature,
)

__all__ = [
    "EFFORT_BUDGET",
    "FAMILY",
    "FINISH_IN",
    "FINISH_OUT",
    "SKIP_SIGNATURE",
    "read_request",
    "read_response",
    "read_signature",
    "reasoning_token",
    "write_request",
    "write_response",
    "write_signature",
]
