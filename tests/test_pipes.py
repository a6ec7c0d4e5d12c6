"""The pass-through pipe's preflight: verdict at the first content or error event."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.dialects import Dialect
from core.dialects.registry import SPECS
from core.pipes import PassthroughPipe

STREAMS = Path(__file__).parent / "data" / "streams"


def test_content_then_a_later_error_commits_on_the_content() -> None:
    pipe = PassthroughPipe(SPECS[Dialect.ANTHROPIC])
    chunk = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m"}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"x"}}\n\n'
    )
    assert pipe.feed(chunk) == chunk  # bytes pass untouched
    assert pipe.content_started and pipe.error_reason is None


def test_error_before_content_is_the_verdict() -> None:
    pipe = PassthroughPipe(SPECS[Dialect.ANTHROPIC])
    pipe.feed((STREAMS / "anthropic_overloaded.sse").read_bytes())
    assert pipe.error_reason == "overloaded_error" and not pipe.content_started


@pytest.mark.parametrize(
    ("name", "dialect"),
    [
        ("anthropic_text.sse", Dialect.ANTHROPIC),
        ("openai_chat_text.sse", Dialect.OPENAI_CHAT),
        ("openai_responses_text.sse", Dialect.OPENAI_RESPONSES),
        ("gemini_text.sse", Dialect.GEMINI),  # CRLF event separators
    ],
)
def test_whole_streams_in_any_split_commit_and_complete(name: str, dialect: Dialect) -> None:
    data = (STREAMS / name).read_bytes()
    for size in (1, 7, 64, len(data)):
        pipe = PassthroughPipe(SPECS[dialect])
        out = b"".join(pipe.feed(data[i : i + size]) for i in range(0, len(data), size))
        assert out == data
        assert pipe.content_started
        assert pipe.close() == b"" and pipe.completed
        assert pipe.usage().output_tokens


def test_truncated_stream_closes_with_the_dialects_error_event() -> None:
    pipe = PassthroughPipe(SPECS[Dialect.ANTHROPIC])
    pipe.feed((STREAMS / "anthropic_truncated.sse").read_bytes())
    assert pipe.content_started
    assert pipe.close().startswith(b"event: error\n") and not pipe.completed
