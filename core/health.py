"""Per-upstream health: a circuit breaker, and cooldowns from rate-limit headers. Pure.

Rules:
- No clock reads: every time is a `now` argument (monotonic seconds).
- The breaker opens after `threshold` consecutive failures and stays open for its cooldown.
  After that it is HALF_OPEN: exactly one request (the probe) may go. The probe's success
  closes it and resets the cooldown; its failure reopens it with the cooldown doubled,
  capped at `max_cooldown`. A probe that ends with no verdict (`release`) frees the slot.
- OPEN -> HALF_OPEN happens by time alone, so `state`/`available` derive it from `now`
  without mutating; `poll` reports that transition once, for event logs.
- Verdicts arriving while OPEN come from requests admitted before it opened (stragglers):
  they are ignored, so one late success cannot cut a cooldown short.
- `Cooldown` holds a "do not call before" time (Retry-After, rate-limit resets): it only
  ever moves later.
"""

from __future__ import annotations

import math
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Transition(StrEnum):
    OPENED = "opened"
    HALF_OPENED = "half_opened"
    CLOSED = "closed"
    REOPENED = "reopened"


class Breaker:
    __slots__ = (
        "_base_cooldown",
        "_half_open_reported",
        "_max_cooldown",
        "_open_until",
        "_probe_in_flight",
        "_state",
        "_threshold",
        "consecutive_failures",
        "current_cooldown",
    )

    def __init__(self, *, threshold: int, cooldown: float, max_cooldown: float) -> None:
        if threshold < 1:
            raise ValueError(f"breaker threshold must be at least 1, got {threshold!r}")
        if not (math.isfinite(cooldown) and cooldown >= 0.0):
            raise ValueError(f"breaker cooldown must be a non-negative number, got {cooldown!r}")
        self._threshold = threshold
        self._base_cooldown = cooldown
        self._max_cooldown = max(cooldown, max_cooldown)  # a cap below the base means no growth
        # Stored state is CLOSED, OPEN (maybe already past open_until) or HALF_OPEN (entered
        # by claiming a probe, and kept after a release until a verdict arrives).
        self._state = BreakerState.CLOSED
        self._open_until = 0.0
        self._probe_in_flight = False
        self._half_open_reported = False
        self.consecutive_failures = 0
        self.current_cooldown = cooldown

    def __repr__(self) -> str:
        return (
            f"Breaker(state={self._state.value}, failures={self.consecutive_failures}, "
            f"cooldown={self.current_cooldown!r}, open_until={self._open_until!r})"
        )

    def state(self, now: float) -> BreakerState:
        if self._state is BreakerState.OPEN and now >= self._open_until:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def closed(self) -> bool:
        return self._state is BreakerState.CLOSED

    def available(self, now: float) -> bool:
        """Would `acquire` admit a request now? Does not claim anything."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        return state is BreakerState.HALF_OPEN and not self._probe_in_flight

    def acquire(self, now: float) -> bool:
        """Admit a request now; in HALF_OPEN this claims the single probe slot."""
        if self._state is BreakerState.CLOSED:
            return True
        if self.state(now) is BreakerState.OPEN or self._probe_in_flight:
            return False
        self._state = BreakerState.HALF_OPEN
        self._probe_in_flight = True
        return True

    def poll(self, now: float) -> Transition | None:
        """HALF_OPENED once per open period, when its cooldown has run out; else None."""
        if self._state is BreakerState.CLOSED:
            return None  # the common case, without the call
        if self.state(now) is BreakerState.HALF_OPEN and not self._half_open_reported:
            self._half_open_reported = True
            return Transition.HALF_OPENED
        return None

    def record_success(self, now: float) -> Transition | None:
        state = self.state(now)
        if state is BreakerState.OPEN:
            return None  # a straggler admitted before the circuit opened
        self.consecutive_failures = 0
        if state is BreakerState.CLOSED:
            return None
        self._state = BreakerState.CLOSED
        self._probe_in_flight = False
        self.current_cooldown = self._base_cooldown
        return Transition.CLOSED

    def record_failure(self, now: float) -> Transition | None:
        state = self.state(now)
        if state is BreakerState.OPEN:
            return None  # a straggler: the circuit already knows
        self.consecutive_failures += 1
        if state is BreakerState.HALF_OPEN:
            self.current_cooldown = min(self._max_cooldown, self.current_cooldown * 2.0)
            self._open(now)
            return Transition.REOPENED
        if self.consecutive_failures >= self._threshold:
            self._open(now)
            return Transition.OPENED
        return None

    def release(self) -> None:
        """The probe ended without a verdict (the client went away): let another probe go."""
        self._probe_in_flight = False

    def retry_at(self) -> float | None:
        """While OPEN: the time a probe may go (possibly already past). Otherwise None."""
        return self._open_until if self._state is BreakerState.OPEN else None

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._open_until = now + self.current_cooldown
        self._probe_in_flight = False
        self._half_open_reported = False


class Cooldown:
    """A time before which an upstream (or key) should not be called."""

    __slots__ = ("until",)

    def __init__(self) -> None:
        # -inf, not 0.0: monotonic clocks (trio's among them) may sit at any value.
        self.until = -math.inf

    def __repr__(self) -> str:
        return f"Cooldown(until={self.until!r})"

    def extend_to(self, until: float) -> None:
        if until > self.until:  # NaN compares False and is ignored
            self.until = until

    def active(self, now: float) -> bool:
        return now < self.until

    def remaining(self, now: float) -> float:
        return max(0.0, self.until - now)
