"""The SSE parser gives the same events for any split of the byte stream."""

from hypothesis import given
from hypothesis import strategies as st

from core.sse import SSEEvent, SSEParser, encode_event

STREAM = (
    b'event: message_start\r\ndata: {"a": 1}\r\n\r\n'
    b": keep-alive comment\n\n"
    b"data: line one\ndata: line two\n\n"
    b"event: ping\ndata: caf\xc3\xa9\rid: 7\r\r"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent(event="message_start", data='{"a": 1}'),
    SSEEvent(data="line one\nline two"),
    SSEEvent(event="ping", data="café", id="7"),
    SSEEvent(data="[DONE]"),
]


def parse_in_pieces(data: bytes, cuts: list[int]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    last = 0
    for cut in sorted(cuts):
        events += parser.feed(data[last:cut])
        last = cut
    events += parser.feed(data[last:])
    return events + parser.close()


def test_whole_stream_parses_to_expected_events() -> None:
    assert parse_in_pieces(STREAM, []) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_byte_split_gives_the_same_events(cuts: list[int]) -> None:
    assert parse_in_pieces(STREAM, cuts) == EXPECTED


def test_truncated_final_event_is_returned_by_close() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: partial") == []
    assert parser.close() == [SSEEvent(data="partial")]


def test_encode_round_trips() -> None:
    raw = encode_event('{"x":\n1}', event="delta")
    assert raw == b'event: delta\ndata: {"x":\ndata: 1}\n\n'
    assert parse_in_pieces(raw, []) == [SSEEvent(event="delta", data='{"x":\n1}')]
