"""Token buckets for pacing requests and tokens per upstream (and per API key). Pure.

Rules:
- No clock reads: every method takes `now` (monotonic seconds). A `now` earlier than one
  already seen refills nothing (time never runs backwards for a bucket).
- A bucket starts full. `try_acquire` either charges all `n` tokens and returns 0.0, or
  charges nothing and returns the exact wait until `n` would be available; `wait_time`
  answers the same question without charging (for choosing among upstreams).
- A request larger than the bucket (`n > capacity`) is admitted once the bucket is full
  and leaves the level negative (debt), so a huge request is slow but never starved.
- `adjust` corrects an estimate with real usage (positive = charge more, negative =
  refund); the level never rises above `capacity`.
"""

from __future__ import annotations

import math

from core.config import Rate

# Float slack: after waiting exactly the returned time, the refill may fall short by a few
# ulps; without slack the caller would get a second, absurdly tiny wait.
_SLACK = 1e-9


class TokenBucket:
    __slots__ = ("_last", "_tokens", "capacity", "rate")

    def __init__(self, *, rate: float, capacity: float, now: float) -> None:
        _check(rate=rate, capacity=capacity)
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._last = now

    def __repr__(self) -> str:
        return (
            f"TokenBucket(rate={self.rate!r}, capacity={self.capacity!r}, "
            f"tokens={self._tokens!r}, last={self._last!r})"
        )

    def _refilled(self, now: float) -> float:
        elapsed = now - self._last
        if elapsed <= 0.0:
            return self._tokens
        return min(self.capacity, self._tokens + elapsed * self.rate)

    def _advance(self, now: float) -> None:
        self._tokens = self._refilled(now)
        self._last = max(self._last, now)

    def try_acquire(self, n: float, now: float) -> float:
        """0.0 if `n` tokens were charged; else the seconds until they would be (no charge)."""
        wait = self.wait_time(n, now)
        if wait == 0.0:
            self._advance(now)
            self._tokens -= n
        return wait

    def wait_time(self, n: float, now: float) -> float:
        """What `try_acquire(n, now)` would return, without charging or changing anything."""
        if n < 0 or math.isnan(n):
            raise ValueError(f"cannot acquire {n!r} tokens")
        need = min(n, self.capacity)  # more than capacity: wait for a full bucket, then owe
        short = need - self._refilled(now)
        if short <= _SLACK * max(1.0, self.capacity):
            return 0.0
        return short / self.rate

    def adjust(self, delta: float, now: float) -> None:
        """Charge `delta` more tokens (negative refunds); never fills above capacity."""
        self._advance(now)
        self._tokens = min(self.capacity, self._tokens - delta)

    def level(self, now: float) -> float:
        """Tokens available at `now`; negative while in debt. Does not change the bucket."""
        return self._refilled(now)

    def time_to_full(self, now: float) -> float:
        return max(0.0, (self.capacity - self._refilled(now)) / self.rate)

    def reconfigure(self, *, rate: float, capacity: float, now: float) -> None:
        """Take new limits (a config reload) and keep the current level, clamped to the new
        capacity, so a reload neither grants a fresh burst nor forgets debt."""
        _check(rate=rate, capacity=capacity)
        self._advance(now)
        self.rate = rate
        self.capacity = capacity
        self._tokens = min(capacity, self._tokens)


def _check(*, rate: float, capacity: float) -> None:
    # A zero rate would make every wait infinite; config validation should prevent it.
    if not (math.isfinite(rate) and rate > 0.0):
        raise ValueError(f"bucket rate must be positive, got {rate!r}")
    if not (math.isfinite(capacity) and capacity > 0.0):
        raise ValueError(f"bucket capacity must be positive, got {capacity!r}")


def bucket_for(rate: Rate, now: float) -> TokenBucket:
    """A bucket for a configured rate: a full period's amount as burst, refilled evenly."""
    return TokenBucket(rate=rate.per_second, capacity=rate.amount, now=now)
