"""The pass-through pipe's preflight: verdict at the first content or error event."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


NAMED = [
    (name, dialect)
    for name in sorted(p.name for p in STREAMS.glob("*.sse"))
    for dialect in (Dialect.ANTHROPIC, Dialect.OPENAI_RESPONSES)
    if name.startswith(dialect.value.replace("-", "_"))
]


def _verdict(pipe: PassthroughPipe) -> tuple[bool, bool, str | None, bool]:
    return pipe.content_started, pipe.completed, pipe.error_reason, pipe.close() == b""


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(0, 4000), max_size=6), case=st.sampled_from(NAMED))
def test_classifying_by_event_name_gives_the_parsers_verdict(
    cuts: list[int], case: tuple[str, Dialect]
) -> None:
    # The preflight skips parsing whole events that open with `event:` for dialects that
    # classify by name; whatever the read boundaries, the verdict is the full parse's.
    name, dialect = case
    data = (STREAMS / name).read_bytes()
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    fast, full = PassthroughPipe(SPECS[dialect]), PassthroughPipe(SPECS[dialect])
    full._by_name = False
    assert b"".join(map(fast.feed, chunks)) == b"".join(map(full.feed, chunks)) == data
    assert _verdict(fast) == _verdict(full)
