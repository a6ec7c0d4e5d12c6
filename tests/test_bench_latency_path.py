"""bench/latency_path.py: the segments of a request's path, from socket stamps."""

from bench.latency_path import Stamp, role, segments

CLIENT, UPSTREAM = 7, 9


def test_role_marks_the_request_ends_only():
    assert role("read", b"POST /v1/messages HTTP/1.1\r\n") == "request in"
    assert role("write", b"POST /v1/messages HTTP/1.1\r\n") == "request out"
    assert role("read", b"HTTP/1.1 200 OK\r\n") == "read"
    assert role("write", b"HTTP/1.1 200 OK\r\n") == "write"


def test_segments_of_json_requests():
    stamps = [
        Stamp(1_000, "request in", CLIENT),
        Stamp(81_000, "request out", UPSTREAM),
        Stamp(281_000, "read", UPSTREAM),
        Stamp(321_000, "write", CLIENT),
        Stamp(500_000, "request in", CLIENT),
        Stamp(560_000, "request out", UPSTREAM),
        Stamp(710_000, "read", UPSTREAM),
        Stamp(760_000, "write", CLIENT),
    ]
    found = segments(stamps)
    assert found == {
        "request side": [80.0, 60.0],
        "upstream wait": [200.0, 150.0],
        "response side": [40.0, 50.0],
    }


def test_a_streams_later_chunks_and_a_half_seen_request_are_not_counted():
    stamps = [
        Stamp(0, "read", UPSTREAM),  # the end of a request stamped before the log began
        Stamp(5_000, "write", CLIENT),
        Stamp(10_000, "request in", CLIENT),
        Stamp(20_000, "write", CLIENT),  # not the upstream: the path has not gone out yet
        Stamp(30_000, "request out", UPSTREAM),
        Stamp(40_000, "read", CLIENT),  # another socket: not the answer
        Stamp(50_000, "read", UPSTREAM),
        Stamp(70_000, "write", CLIENT),  # the stream's head and first events
        Stamp(90_000, "read", UPSTREAM),  # the rest of the stream
        Stamp(95_000, "write", CLIENT),
        Stamp(100_000, "request in", CLIENT),  # the last request never got its answer
        Stamp(110_000, "request out", UPSTREAM),
    ]
    assert segments(stamps) == {
        "request side": [20.0],
        "upstream wait": [20.0],
        "response side": [20.0],
    }
