"""The circuit breaker's life over virtual time, and header cooldowns."""

from __future__ import annotations

import math

import pytest

from core.health import Breaker, BreakerState, Cooldown, Transition


def make_breaker() -> Breaker:
    return Breaker(threshold=3, cooldown=5.0, max_cooldown=30.0)


def open_breaker(breaker: Breaker, now: float) -> None:
    for _ in range(3):
        breaker.acquire(now)
        breaker.record_failure(now)
    assert breaker.state(now) is BreakerState.OPEN


def test_it_opens_after_threshold_consecutive_failures_and_a_success_resets_the_count() -> None:
    breaker = make_breaker()
    assert breaker.record_failure(1.0) is None
    assert breaker.record_failure(2.0) is None
    assert breaker.record_success(3.0) is None  # consecutive: the count starts over
    assert breaker.consecutive_failures == 0

    assert breaker.record_failure(4.0) is None
    assert breaker.record_failure(5.0) is None
    assert breaker.state(5.0) is BreakerState.CLOSED
    assert breaker.available(5.0)
    assert breaker.record_failure(6.0) is Transition.OPENED
    assert breaker.consecutive_failures == 3
    assert breaker.state(6.0) is BreakerState.OPEN
    assert breaker.retry_at() == 11.0
    assert not breaker.available(6.0)
    assert not breaker.acquire(10.9)


def test_after_the_cooldown_exactly_one_probe_is_admitted() -> None:
    breaker = make_breaker()
    open_breaker(breaker, now=0.0)
    assert breaker.state(4.999) is BreakerState.OPEN
    assert breaker.state(5.0) is BreakerState.HALF_OPEN
    assert breaker.available(5.0)
    assert breaker.available(5.0)  # asking does not claim

    assert breaker.acquire(5.0) is True  # the probe
    assert breaker.acquire(5.0) is False  # everyone else waits for its verdict
    assert breaker.acquire(7.0) is False
    assert not breaker.available(7.0)
    assert breaker.state(7.0) is BreakerState.HALF_OPEN
    assert breaker.retry_at() is None  # not open: a probe is deciding


def test_poll_reports_half_open_once_per_open_period() -> None:
    breaker = make_breaker()
    assert breaker.poll(0.0) is None
    open_breaker(breaker, now=0.0)
    assert breaker.poll(4.0) is None
    assert breaker.poll(5.0) is Transition.HALF_OPENED
    assert breaker.poll(6.0) is None
    breaker.acquire(6.0)
    breaker.record_failure(6.0)  # reopened for 10 s
    assert breaker.poll(15.0) is None
    assert breaker.poll(16.0) is Transition.HALF_OPENED


def test_each_failed_probe_doubles_the_cooldown_up_to_the_cap() -> None:
    breaker = make_breaker()
    open_breaker(breaker, now=0.0)
    now, open_periods = 0.0, []
    for _ in range(5):
        now = breaker.retry_at() or math.nan
        assert breaker.acquire(now)
        assert breaker.record_failure(now) is Transition.REOPENED
        assert breaker.state(now) is BreakerState.OPEN
        open_periods.append((breaker.retry_at() or math.nan) - now)
    assert open_periods == [10.0, 20.0, 30.0, 30.0, 30.0]
    assert breaker.current_cooldown == 30.0


def test_a_successful_probe_closes_and_resets_the_cooldown() -> None:
    breaker = make_breaker()
    open_breaker(breaker, now=0.0)
    breaker.acquire(5.0)
    breaker.record_failure(5.0)  # reopened until 15
    assert breaker.current_cooldown == 10.0
    assert breaker.acquire(15.0)
    assert breaker.record_success(15.5) is Transition.CLOSED
    assert breaker.state(15.5) is BreakerState.CLOSED
    assert breaker.current_cooldown == 5.0
    assert breaker.consecutive_failures == 0
    assert breaker.retry_at() is None
    assert all(breaker.acquire(16.0) for _ in range(10))  # closed: no probe limit

    # The next opening starts again from the base cooldown.
    open_breaker(breaker, now=20.0)
    assert breaker.retry_at() == 25.0


def test_release_frees_the_probe_slot_without_a_verdict() -> None:
    breaker = make_breaker()
    open_breaker(breaker, now=0.0)
    assert breaker.acquire(5.0)
    breaker.release()  # the client went away mid-probe
    assert breaker.state(5.0) is BreakerState.HALF_OPEN
    assert breaker.available(5.0)
    assert breaker.acquire(5.1)  # a new probe
    assert not breaker.acquire(5.1)
    assert breaker.current_cooldown == 5.0  # no verdict, no doubling


def test_stragglers_do_not_change_an_open_breaker() -> None:
    breaker = make_breaker()
    open_breaker(breaker, now=0.0)
    # Requests admitted before it opened answer late.
    assert breaker.record_success(1.0) is None
    assert breaker.record_failure(2.0) is None
    assert breaker.state(3.0) is BreakerState.OPEN
    assert breaker.retry_at() == 5.0
    assert breaker.current_cooldown == 5.0


def test_a_threshold_of_one_opens_on_the_first_failure() -> None:
    breaker = Breaker(threshold=1, cooldown=2.0, max_cooldown=1.0)  # cap below base: no growth
    assert breaker.record_failure(0.0) is Transition.OPENED
    assert breaker.acquire(2.0)
    assert breaker.record_failure(2.0) is Transition.REOPENED
    assert breaker.retry_at() == 4.0
    with pytest.raises(ValueError):
        Breaker(threshold=0, cooldown=1.0, max_cooldown=1.0)


def test_a_cooldown_only_moves_later_and_runs_out() -> None:
    cooldown = Cooldown()
    assert not cooldown.active(-1e9)  # unset means never, whatever the clock's origin
    assert cooldown.remaining(0.0) == 0.0

    cooldown.extend_to(130.0)  # Retry-After: 30 at t=100
    cooldown.extend_to(110.0)  # a shorter hint later does not cut it short
    cooldown.extend_to(math.nan)
    assert cooldown.until == 130.0
    assert cooldown.active(100.0)
    assert cooldown.remaining(100.0) == 30.0
    assert cooldown.remaining(129.5) == 0.5
    assert not cooldown.active(130.0)
    assert cooldown.remaining(200.0) == 0.0

    cooldown.extend_to(260.0)
    assert cooldown.active(200.0)
    assert cooldown.remaining(200.0) == 60.0
