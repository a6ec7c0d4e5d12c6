"""Failover: what each upstream answer means, the wait hints it carries, and what to do next."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from core.errors import (
    BadRequest,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from core.failover import (
    MAX_RETRY_AFTER,
    GiveUp,
    GiveUpReason,
    Outcome,
    OutcomeKind,
    Retry,
    backoff_delay,
    classify_error,
    classify_status,
    go_duration,
    plan_next,
    stream_failure,
)

WALL = 1_750_000_000.0  # the test's time.time()
OVERLOADED = json.dumps(
    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
).encode()


def classify(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Outcome:
    raw = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return classify_status(status, raw, body, wall_now=WALL)


def iso(seconds_from_now: float) -> str:
    when = datetime.fromtimestamp(WALL, UTC) + timedelta(seconds=seconds_from_now)
    return when.isoformat().replace("+00:00", "Z")


# -- classification ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204])
def test_2xx_is_ok_and_ignores_wait_hints(status: int) -> None:
    outcome = classify(status, {"retry-after": "30"}, b'{"id": "msg_1"}')
    assert outcome == Outcome(kind=OutcomeKind.OK, reason=str(status), status=status)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
def test_overload_and_server_errors_are_retryable(status: int) -> None:
    outcome = classify(status, body=b'{"error": {"type": "api_error"}}')
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert (outcome.reason, outcome.status, outcome.retry_after) == (str(status), status, None)


@pytest.mark.parametrize("status", [529, 400, 500, 200])
def test_an_anthropic_overloaded_body_is_retryable_whatever_the_status(status: int) -> None:
    outcome = classify(status, body=OVERLOADED)
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert (outcome.reason, outcome.status) == ("overloaded_error", status)


def test_the_word_overloaded_in_ordinary_content_is_not_an_overload() -> None:
    body = json.dumps({"content": [{"type": "text", "text": 'the "overloaded_error" type'}]})
    assert classify(200, body=body.encode()).kind is OutcomeKind.OK
    assert classify(400, body=b"overloaded_error, not json").kind is OutcomeKind.CLIENT_ERROR
    assert classify(400, body=b'["overloaded_error"]').kind is OutcomeKind.CLIENT_ERROR
    assert classify(400, body=b"\xff\xfeoverloaded_error").kind is OutcomeKind.CLIENT_ERROR


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_reject_the_key(status: int) -> None:
    outcome = classify(status, body=b'{"error": {"type": "authentication_error"}}')
    assert (outcome.kind, outcome.reason) == (OutcomeKind.KEY_REJECTED, str(status))


@pytest.mark.parametrize("status", [400, 404, 413, 422, 501, 302])
def test_other_statuses_are_the_clients_problem(status: int) -> None:
    outcome = classify(status, body=b'{"error": {"type": "invalid_request_error"}}')
    assert (outcome.kind, outcome.status) == (OutcomeKind.CLIENT_ERROR, status)


def test_transport_failures_are_retryable_with_a_reason_naming_them() -> None:
    cases = [
        (UpstreamConnectError("refused"), "connect_error"),
        (UpstreamTimeout("slow", phase="first_byte"), "timeout:first_byte"),
        (UpstreamTimeout("quiet", phase="idle"), "timeout:idle"),
        (UpstreamProtocolError("bad chunk"), "protocol_error"),
        (ConnectionResetError(), "error:ConnectionResetError"),
        (BadRequest("odd"), "error:BadRequest"),
    ]
    for exc, reason in cases:
        assert classify_error(exc) == Outcome(kind=OutcomeKind.RETRYABLE, reason=reason)
    assert stream_failure("early_close") == Outcome(
        kind=OutcomeKind.RETRYABLE, reason="early_close"
    )


# -- wait hints -------------------------------------------------------------------------


def test_retry_after_in_seconds_and_milliseconds() -> None:
    assert classify(429, {"Retry-After": "30"}).retry_after == 30.0
    assert classify(503, {"retry-after": " 1.5 "}).retry_after == 1.5
    assert classify(529, {"retry-after-ms": "250"}).retry_after == 0.25
    # Both present: the longer one.
    assert classify(429, {"retry-after": "2", "retry-after-ms": "4000"}).retry_after == 4.0
    assert classify(429, {"retry-after": "0"}).retry_after == 0.0


def test_retry_after_as_an_http_date() -> None:
    in_90s = format_datetime(datetime.fromtimestamp(WALL + 90, UTC), usegmt=True)
    assert classify(503, {"Retry-After": in_90s}).retry_after == pytest.approx(90.0)
    past = format_datetime(datetime.fromtimestamp(WALL - 90, UTC), usegmt=True)
    assert classify(503, {"Retry-After": past}).retry_after == 0.0  # already due


def test_anthropic_reset_stamps_of_exhausted_limits() -> None:
    headers = {
        "anthropic-ratelimit-requests-remaining": "12",
        "anthropic-ratelimit-requests-reset": iso(50),  # not exhausted: ignored
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": iso(20),
        "anthropic-ratelimit-output-tokens-remaining": "0",
        "anthropic-ratelimit-output-tokens-reset": iso(7.5),
    }
    assert classify(429, headers).retry_after == pytest.approx(20.0)

    # With no remaining counts, every reset in the future counts; the latest wins.
    headers = {
        "anthropic-ratelimit-input-tokens-reset": iso(12),
        "anthropic-ratelimit-requests-reset": iso(-5),  # past: ignored
    }
    assert classify(429, headers).retry_after == pytest.approx(12.0)


def test_openai_reset_durations() -> None:
    headers = {"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}
    assert classify(429, headers).retry_after == 360.0
    assert classify(429, {"x-ratelimit-reset-tokens": "20ms"}).retry_after == pytest.approx(0.02)
    assert go_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert go_duration("1.5h") == 5400.0
    assert go_duration("250us") == pytest.approx(0.00025)
    assert go_duration("7") == 7.0


def test_every_source_counts_and_the_longest_wins_capped_at_an_hour() -> None:
    headers = {
        "retry-after": "5",
        "anthropic-ratelimit-tokens-reset": iso(45),
        "x-ratelimit-reset-requests": "30s",
    }
    assert classify(429, headers).retry_after == pytest.approx(45.0)
    assert classify(429, {"retry-after": "86400"}).retry_after == MAX_RETRY_AFTER
    assert classify(429, {"x-ratelimit-reset-tokens": "100h"}).retry_after == MAX_RETRY_AFTER


def test_hints_travel_with_key_rejections_and_client_errors_too() -> None:
    assert classify(403, {"retry-after": "60"}).retry_after == 60.0
    assert classify(400, {"retry-after": "60"}).retry_after == 60.0


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "soon"},
        {"retry-after": "-5"},
        {"retry-after": "nan"},
        {"retry-after": "inf"},
        {"retry-after": "1e999"},
        {"retry-after": ""},
        {"retry-after": "Wed, 99 Foo 2015 07:28:00 GMT"},
        {"retry-after-ms": "many"},
        {"anthropic-ratelimit-tokens-reset": "tomorrow"},
        {"anthropic-ratelimit-tokens-reset": "2024-13-45T99:00:00Z"},
        {"x-ratelimit-reset-requests": "1x"},
        {"x-ratelimit-reset-requests": "s"},
        {"x-ratelimit-reset-requests": "1s2"},
        {"x-ratelimit-reset-requests": "-1s"},
    ],
)
def test_garbage_hints_are_ignored_never_raised(headers: dict[str, str]) -> None:
    assert classify(429, headers).retry_after is None


def test_undecodable_header_bytes_are_ignored() -> None:
    raw = [(b"retry-after", b"\xff\xfe"), (b"x-ratelimit-reset-tokens", b"2s\x00")]
    outcome = classify_status(429, raw, b"", wall_now=WALL)
    assert (outcome.kind, outcome.retry_after) == (OutcomeKind.RETRYABLE, None)


# -- backoff and planning ---------------------------------------------------------------


def test_full_jitter_stays_within_the_doubling_ceiling_and_the_cap() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(0, 0.25), (1, 0.5), (2, 1.0), (5, 8.0), (6, 8.0), (10_000, 8.0)]:
        delays = [backoff_delay(attempt, base=0.25, cap=8.0, rng=rng) for _ in range(2000)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # Full jitter spreads over the whole range, not just near the top.
        assert min(delays) < ceiling * 0.05
        assert max(delays) > ceiling * 0.95
    assert backoff_delay(-3, base=0.25, cap=8.0, rng=rng) <= 0.25


def plan(outcome: Outcome, **overrides: object) -> Retry | GiveUp:
    args: dict[str, object] = {
        "outcome": outcome,
        "attempts_made": 1,
        "max_attempts": 3,
        "fallback": True,
        "remaining_candidates": 2,
        "now": 100.0,
        "deadline": 220.0,
        "base": 0.25,
        "cap": 8.0,
        "rng": random.Random(1),
    }
    args.update(overrides)
    return plan_next(**args)  # type: ignore[arg-type]


RETRYABLE_429 = Outcome(kind=OutcomeKind.RETRYABLE, reason="429", status=429)


def test_a_retryable_failure_retries_after_jittered_backoff() -> None:
    first = plan(RETRYABLE_429, attempts_made=1)
    second = plan(RETRYABLE_429, attempts_made=2)
    assert isinstance(first, Retry) and isinstance(second, Retry)
    # Same seed: the draw scales with the ceiling (0.25 after one attempt, 0.5 after two).
    expected = random.Random(1).uniform(0.0, 0.25)
    assert first.delay == pytest.approx(expected)
    assert second.delay == pytest.approx(2 * expected)


def test_a_rejected_key_moves_on_at_once() -> None:
    rejected = Outcome(kind=OutcomeKind.KEY_REJECTED, reason="401", status=401)
    assert plan(rejected, attempts_made=2) == Retry(delay=0.0)


@pytest.mark.parametrize(
    "kind", [OutcomeKind.OK, OutcomeKind.CLIENT_ERROR, OutcomeKind.CLIENT_GONE]
)
def test_nothing_to_retry_after_success_client_errors_or_a_gone_client(kind: OutcomeKind) -> None:
    assert plan(Outcome(kind=kind, reason="x")) == GiveUp(reason=GiveUpReason.NOT_RETRYABLE)


def test_give_up_rules() -> None:
    assert plan(RETRYABLE_429, fallback=False) == GiveUp(reason="fallback_disabled")
    assert plan(RETRYABLE_429, attempts_made=3) == GiveUp(reason="max_attempts")
    assert isinstance(plan(RETRYABLE_429, attempts_made=2), Retry)
    assert plan(RETRYABLE_429, remaining_candidates=0) == GiveUp(reason="no_candidates")
    rejected = Outcome(kind=OutcomeKind.KEY_REJECTED, reason="403", status=403)
    assert plan(rejected, remaining_candidates=0) == GiveUp(reason="no_candidates")


def test_the_deadline_includes_the_backoff_wait() -> None:
    delay = random.Random(1).uniform(0.0, 0.25)
    assert plan(RETRYABLE_429, now=100.0, deadline=100.0 + delay + 1e-6) == Retry(delay=delay)
    assert plan(RETRYABLE_429, now=100.0, deadline=100.0 + delay) == GiveUp(reason="deadline")
    rejected = Outcome(kind=OutcomeKind.KEY_REJECTED, reason="401", status=401)
    assert plan(rejected, now=100.0, deadline=100.0) == GiveUp(reason="deadline")
