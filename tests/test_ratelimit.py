"""Token buckets over virtual time: exact waits, debt, corrections, the capacity ceiling."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.config import Rate
from core.ratelimit import TokenBucket, bucket_for


def test_a_fresh_bucket_allows_a_full_burst_then_paces_at_the_rate() -> None:
    # 60 requests/min: a burst of 60, then one request per second.
    bucket = bucket_for(Rate(amount=60, per_seconds=60), now=100.0)
    assert (bucket.capacity, bucket.rate) == (60, 1.0)
    assert all(bucket.try_acquire(1, now=100.0) == 0.0 for _ in range(60))
    assert bucket.level(100.0) == pytest.approx(0.0)

    # The 61st waits exactly one second, and nothing was charged by asking.
    assert bucket.wait_time(1, now=100.0) == pytest.approx(1.0)
    assert bucket.wait_time(0.5, now=100.0) == pytest.approx(0.5)
    assert bucket.try_acquire(1, now=100.0) == pytest.approx(1.0)
    assert bucket.try_acquire(1, now=100.25) == pytest.approx(0.75)
    assert bucket.level(100.25) == pytest.approx(0.25)

    # Waiting the returned time is enough: no second, tiny wait.
    assert bucket.try_acquire(1, now=101.0) == 0.0
    assert bucket.try_acquire(1, now=101.0) == pytest.approx(1.0)


def test_pacing_a_steady_stream_admits_exactly_rate_per_second() -> None:
    bucket = TokenBucket(rate=2.0, capacity=2.0, now=0.0)
    now = 0.0
    admitted_at: list[float] = []
    while len(admitted_at) < 8:
        wait = bucket.try_acquire(1, now)
        if wait == 0.0:
            admitted_at.append(now)
        else:
            now += wait
    # Two from the burst at t=0, then one every half second.
    assert admitted_at == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])


def test_waiting_the_returned_time_is_enough_despite_float_rounding() -> None:
    # 0.9 / 3.0 * 3.0 == 0.8999999999999999: without slack the caller would get a 1e-17 s wait.
    bucket = TokenBucket(rate=3.0, capacity=10.0, now=0.0)
    assert bucket.try_acquire(10, now=0.0) == 0.0
    wait = bucket.try_acquire(0.9, now=0.0)
    assert wait == pytest.approx(0.3)
    assert bucket.try_acquire(0.9, now=wait) == 0.0


def test_a_wait_for_several_tokens_counts_the_partial_refill() -> None:
    bucket = TokenBucket(rate=10.0, capacity=100.0, now=0.0)
    assert bucket.try_acquire(95, now=0.0) == 0.0
    assert bucket.try_acquire(20, now=0.0) == pytest.approx(1.5)  # need 15 more at 10/s
    assert bucket.try_acquire(20, now=1.0) == pytest.approx(0.5)  # 15 there now
    assert bucket.try_acquire(20, now=1.5) == 0.0
    assert bucket.level(1.5) == pytest.approx(0.0)


def test_a_request_larger_than_the_bucket_waits_for_full_then_leaves_debt() -> None:
    # 1000 tokens/min; a 2500-token request cannot ever fit, but must not starve.
    bucket = bucket_for(Rate(amount=1000, per_seconds=60), now=0.0)
    rate = 1000 / 60
    assert bucket.try_acquire(100, now=0.0) == 0.0
    assert bucket.try_acquire(2500, now=0.0) == pytest.approx(100 / rate)  # until full
    assert bucket.try_acquire(2500, now=6.0) == 0.0  # full at t=6: admitted
    assert bucket.level(6.0) == pytest.approx(-1500.0)

    # The debt is paid back by time: a small request waits for it.
    assert bucket.try_acquire(1, now=6.0) == pytest.approx(1501 / rate)
    assert bucket.level(6.0 + 1500 / rate) == pytest.approx(0.0)
    assert bucket.time_to_full(6.0) == pytest.approx(2500 / rate)


def test_adjust_corrects_an_estimate_both_ways_but_never_overfills() -> None:
    bucket = TokenBucket(rate=1.0, capacity=100.0, now=0.0)
    assert bucket.try_acquire(30, now=0.0) == 0.0  # estimated 30 tokens
    bucket.adjust(20, now=0.0)  # the answer used 50
    assert bucket.level(0.0) == pytest.approx(50.0)
    bucket.adjust(-10, now=0.0)  # ...no, 40
    assert bucket.level(0.0) == pytest.approx(60.0)

    # A refund larger than what was charged stops at capacity.
    bucket.adjust(-500, now=0.0)
    assert bucket.level(0.0) == 100.0
    # And an overcharge may push into debt.
    bucket.adjust(150, now=0.0)
    assert bucket.level(0.0) == pytest.approx(-50.0)
    assert bucket.time_to_full(0.0) == pytest.approx(150.0)


def test_a_full_bucket_stays_full_and_time_never_runs_backwards() -> None:
    bucket = TokenBucket(rate=5.0, capacity=10.0, now=50.0)
    assert bucket.level(1_000_000.0) == 10.0
    assert bucket.time_to_full(60.0) == 0.0
    assert bucket.try_acquire(10, now=60.0) == 0.0
    # A stale `now` refills nothing, and does not rewind the refill clock.
    assert bucket.level(10.0) == pytest.approx(0.0)
    assert bucket.try_acquire(5, now=10.0) == pytest.approx(1.0)
    assert bucket.try_acquire(5, now=61.0) == 0.0


def test_reconfigure_keeps_the_level_clamped_to_the_new_capacity() -> None:
    bucket = TokenBucket(rate=1.0, capacity=100.0, now=0.0)
    bucket.try_acquire(40, now=0.0)
    bucket.reconfigure(rate=2.0, capacity=50.0, now=0.0)  # a reload tightened the limit
    assert bucket.level(0.0) == 50.0
    bucket.try_acquire(50, now=0.0)
    bucket.reconfigure(rate=1.0, capacity=500.0, now=0.0)  # ...and loosened it: no free burst
    assert bucket.level(0.0) == pytest.approx(0.0)
    assert bucket.time_to_full(0.0) == pytest.approx(500.0)


def test_nonsense_limits_and_negative_requests_are_refused() -> None:
    for rate, capacity in [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0), (math.inf, 1.0), (1.0, math.nan)]:
        with pytest.raises(ValueError):
            TokenBucket(rate=rate, capacity=capacity, now=0.0)
    with pytest.raises(ValueError):
        TokenBucket(rate=1.0, capacity=1.0, now=0.0).try_acquire(-1, now=0.0)


@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["acquire", "adjust"]),
            st.floats(min_value=-200, max_value=200),
            st.floats(min_value=0, max_value=30),
        ),
        max_size=40,
    )
)
def test_the_level_never_exceeds_capacity_and_waits_are_honest(
    ops: list[tuple[str, float, float]],
) -> None:
    bucket = TokenBucket(rate=3.0, capacity=60.0, now=0.0)
    now = 0.0
    for op, amount, step in ops:
        now += step
        if op == "adjust":
            bucket.adjust(amount, now)
        else:
            n = abs(amount)
            before = bucket.level(now)
            predicted = bucket.wait_time(n, now)
            wait = bucket.try_acquire(n, now)
            assert wait == predicted
            if wait == 0.0:
                assert bucket.level(now) == pytest.approx(before - n)
            else:
                assert bucket.level(now) == before  # nothing charged
                assert bucket.try_acquire(n, now + wait) == 0.0  # the wait was enough
                now += wait
        assert bucket.level(now) <= bucket.capacity
