"""Anthropic Messages streams <-> canonical stream events, sans-IO.

The Decoder is stream_anthropic_decode.py, the Encoder stream_anthropic_encode.py; this
module holds the grammar and rules both follow and re-exports their public names.

Grammar (docs: "Streaming messages"): `message_start` (a Message with empty content and
input usage), then per content block `content_block_start` / `content_block_delta`
(text_delta, input_json_delta, thinking_delta, signature_delta) / `content_block_stop`,
then `message_delta` (stop_reason, stop_sequence, cumulative usage), then `message_stop`.
Every event carries an `event:` line equal to its data `type`. `ping` is ignored. A mid-
stream failure is `event: error` with {"type":"error","error":{"type":..., "message":...}}.

Rules:
- Usage: Anthropic's `input_tokens` excludes cache reads and writes; canonical input counts
  them all, so the decoder adds them and the encoder subtracts them.
- A `redacted_thinking` block arrives whole in `content_block_start`; it becomes a
  reasoning block whose only delta carries `redacted`. The encoder opens reasoning blocks
  lazily so it can choose between `thinking` and `redacted_thinking` on the first delta.
- The encoder numbers client blocks itself (a dropped empty block never leaves a gap).
- Opaque tokens follow the body rules (common.py): the decoder tags signatures and
  redacted data `ccx:anthropic:`; the encoder emits them raw when Anthropic minted them,
  tagged otherwise, so the client hands them back next turn. A foreign redacted token
  (OpenAI encrypted_content) arriving after visible thinking is that thinking block's
  signature, as anthropic.py writes it; alone, it is a redacted_thinking block. A Gemini
  function-call signature rides in the tool_use id (`<id>__ccxsig__<b64url>`).
"""

from __future__ import annotations

from core.translate.stream_anthropic_decode import EARLY_END, FAMILY, Decoder
from core.translate.stream_anthropic_encode import Encoder, error_event

__all__ = ["EARLY_END", "FAMILY", "Decoder", "Encoder", "error_event"]
