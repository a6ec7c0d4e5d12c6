"""OpenAI Responses streams <-> canonical stream events, sans-IO.

The Decoder is stream_openai_responses_decode.py, the Encoder
stream_openai_responses_encode.py; this module holds the grammar and rules both follow
and re-exports their public names.

Grammar (docs: "Streaming API responses"): every event has an `event:` line equal to the
data's `type` and an increasing `sequence_number` from 0. `response.created`,
`response.in_progress`, then per output item `response.output_item.added` ... `.done`:
message items carry `response.content_part.added`, `response.output_text.delta`/`.done`,
`response.content_part.done`; function_call items `response.function_call_arguments.delta`
/`.done`; custom_tool_call items `response.custom_tool_call_input.delta`/`.done`; reasoning
items `response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta`/
`.done`, `response.reasoning_summary_part.done`. The stream ends with `response.completed`
(or `response.incomplete`, `response.failed`) carrying the full response object and usage.
There is no `[DONE]`.

Rules:
- One canonical block is one output item (a text block is a message item with one
  output_text part). Item ids are synthesised from the response id; tool `call_id`s are
  the canonical tool ids, kept as given.
- Reasoning text is written as a reasoning summary (what Codex and the SDK display).
  Opaque tokens follow the body rules (common.py): the decoder tags `encrypted_content`
  `ccx:openai:`; the encoder writes the item's `encrypted_content` raw when OpenAI minted
  it, else the tagged foreign token (an Anthropic signature, a Gemini thoughtSignature),
  so the client hands it back next turn. A Gemini function-call signature rides in the
  call_id (`<id>__ccxsig__<b64url>`); the item id keeps the plain id.
- Errors are written as an `error` event followed by `response.failed`, so clients that
  watch either one stop with an error, never a clean end.
- Cost: the decoder reads an event's leading `type` first and does not parse events that
  have no canonical meaning (`response.in_progress`, the `.done` events that repeat the
  whole text); text and argument deltas take the fast lane (stream_lane.py).
"""

from __future__ import annotations

from core.translate.stream_openai_responses_decode import EARLY_END, FAMILY, Decoder, usage_in
from core.translate.stream_openai_responses_encode import Encoder, usage_out

__all__ = ["EARLY_END", "FAMILY", "Decoder", "Encoder", "usage_in", "usage_out"]
