"""Micro-benchmark: CPU cost per upstream SSE event of cross-dialect stream translation.

Run: `python bench/stream_translate_bench.py`. Prints microseconds per upstream event for
anthropic->openai and openai->anthropic (a text stream of N deltas plus a streamed tool
call, fed one network chunk per event as a real upstream delivers it), next to the cost
of only parsing the same bytes with core.sse (the floor any translation pays).

Budget: a same-dialect relay costs about 43 us per SSE event in the server alone
(STACK-NOTES.md), so translation must stay well under that to keep cross-dialect
streaming within 2x of a relay.
"""

from __future__ import annotations

import json
import time

from core.dialects import Dialect
from core.sse import SSEParser
from core.translate.streams import StreamTranslator


def _anthropic_stream(n: int) -> list[bytes]:
    def ev(name: str, data: dict[str, object]) -> bytes:
        return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    msg = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
           "content": [], "stop_reason": None, "stop_sequence": None,
           "usage": {"input_tokens": 100, "output_tokens": 1}}  # fmt: skip
    out = [ev("message_start", {"type": "message_start", "message": msg})]
    text_block = {"type": "text", "text": ""}
    out.append(ev("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": text_block}))  # fmt: skip
    for i in range(n):
        delta = {"type": "text_delta", "text": f"token {i} "}
        out.append(
            ev("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        )
    out.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
    block = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    out.append(
        ev(
            "content_block_start",
            {"type": "content_block_start", "index": 1, "content_block": block},
        )
    )
    for frag in ['{"a": ', "1}"]:
        delta = {"type": "input_json_delta", "partial_json": frag}
        out.append(
            ev("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": delta})
        )
    out.append(ev("content_block_stop", {"type": "content_block_stop", "index": 1}))
    out.append(ev("message_delta", {"type": "message_delta",
                                    "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                                    "usage": {"output_tokens": n}}))  # fmt: skip
    out.append(ev("message_stop", {"type": "message_stop"}))
    return out


def _openai_stream(n: int) -> list[bytes]:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt"}

    def chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return f"data: {json.dumps({**head, 'choices': [choice]})}\n\n".encode()

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": f"token {i} "}) for i in range(n)]
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    out.append(chunk({"tool_calls": [call]}))
    for frag in ['{"a": ', "1}"]:
        out.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": frag}}]}))
    out.append(chunk({}, "tool_calls"))
    usage = {"prompt_tokens": 100, "completion_tokens": n, "total_tokens": 100 + n}
    out.append(f"data: {json.dumps({**head, 'choices': [], 'usage': usage})}\n\n".encode())
    out.append(b"data: [DONE]\n\n")
    return out


def _per_event_us(fn: object, chunks: list[bytes], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn(chunks)  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best / len(chunks) * 1e6


def _translate(src: Dialect, dst: Dialect):  # type: ignore[no-untyped-def]
    def run(chunks: list[bytes]) -> None:
        t = StreamTranslator(src=src, dst=dst, client_model="m", created=1)
        for c in chunks:
            t.feed(c)
        t.close()

    return run


def _parse_only(chunks: list[bytes]) -> None:
    p = SSEParser()
    for c in chunks:
        p.feed(c)
    p.close()


def bench(n: int = 2000, rounds: int = 5) -> dict[str, float]:
    """Microseconds per upstream event, best of `rounds`."""
    a, o = _anthropic_stream(n), _openai_stream(n)
    return {
        "anthropic->openai": _per_event_us(
            _translate(Dialect.ANTHROPIC, Dialect.OPENAI_CHAT), a, rounds
        ),
        "openai->anthropic": _per_event_us(
            _translate(Dialect.OPENAI_CHAT, Dialect.ANTHROPIC), o, rounds
        ),
        "sse parse only (anthropic bytes)": _per_event_us(_parse_only, a, rounds),
        "sse parse only (openai bytes)": _per_event_us(_parse_only, o, rounds),
    }


if __name__ == "__main__":
    for name, us in bench().items():
        print(f"{name:34s} {us:7.2f} us/event")
