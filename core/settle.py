"""Accounting after an attempt: breaker, cooldowns, key rest, counters, token correction.

Pure (takes `now`), called exactly once per admitted attempt. Rules:
- A client that went away is never an upstream failure: the breaker probe is released.
- 429 with a reset time (Retry-After and friends) cools the upstream until then and does
  not count against its health; other retryable failures feed the breaker.
- 401/403 rest that key (not the upstream) for KEY_REJECT_COOLDOWN seconds.
- A client error (4xx) proves the upstream is alive: it counts as a success for health.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

from core.dialects.base import Usage
from core.failover import Outcome, OutcomeKind
from core.health import Transition
from core.state import EventKind, KeyState, Runtime, UpstreamState

KEY_REJECT_COOLDOWN = 60.0

_TRANSITION_EVENTS: dict[Transition, tuple[EventKind, str]] = {
    Transition.OPENED: ("breaker_opened", "circuit opened"),
    Transition.REOPENED: ("breaker_opened", "circuit reopened after a failed probe"),
    Transition.HALF_OPENED: ("breaker_half_open", "circuit half-open: probing"),
    Transition.CLOSED: ("breaker_closed", "circuit closed: upstream recovered"),
}


class Claim(NamedTuple):
    """A slot taken on one upstream for one attempt: what settling it needs."""

    runtime: Runtime
    state: UpstreamState
    estimate: float  # input tokens charged to its token bucket at admission
    key: KeyState | None  # the key used (None without keys): rested on 401/403


def settle(claim: Claim, outcome: Outcome, usage: Usage | None, now: float) -> None:
    runtime, state, estimate, key = claim
    state.active = max(0, state.active - 1)
    wall = time.time()
    kind = outcome.kind
    transition: Transition | None = None
    if kind is OutcomeKind.CLIENT_GONE:
        state.breaker.release()
    elif kind in (OutcomeKind.OK, OutcomeKind.CLIENT_ERROR):
        transition = state.breaker.record_success(now)
        if kind is OutcomeKind.OK:
            state.counters.successes += 1
    elif kind is OutcomeKind.KEY_REJECTED:
        state.breaker.release()
        _fail(state, outcome, wall, key)
        if key is not None:
            key.cooldown.extend_to(now + KEY_REJECT_COOLDOWN)
            runtime.add_event(
                wall,
                "key_cooldown",
                state.name,
                f"key {key.secret.masked} rejected ({outcome.status}); resting "
                f"{KEY_REJECT_COOLDOWN:.0f}s",
            )
    else:
        _fail(state, outcome, wall, key)
        if outcome.status == 429 and outcome.retry_after is not None:
            state.breaker.release()
        else:
            transition = state.breaker.record_failure(now)
        if outcome.retry_after is not None and outcome.retry_after > 0:
            state.cooldown.extend_to(now + outcome.retry_after)
            runtime.add_event(
                wall,
                "cooldown",
                state.name,
                f"cooling down {outcome.retry_after:.1f}s ({outcome.reason})",
            )
    if transition is not None:
        _note_transition(runtime, state, transition, wall)
    if usage is not None:
        _count_tokens(state, usage, estimate, now)


def _fail(state: UpstreamState, outcome: Outcome, wall: float, key: KeyState | None) -> None:
    state.counters.failures += 1
    text = outcome.reason
    if outcome.status is not None and str(outcome.status) != outcome.reason:
        text += f" (HTTP {outcome.status})"
    if key is not None:
        text += f" with key {key.secret.masked}"  # which key of a pool; masked, never whole
    state.last_error = text
    state.last_error_wall = wall


def _count_tokens(state: UpstreamState, usage: Usage, estimate: float, now: float) -> None:
    used = (usage.input_tokens or 0) + (usage.output_tokens or 0)
    state.counters.input_tokens += usage.input_tokens or 0
    state.counters.output_tokens += usage.output_tokens or 0
    if state.tokens_bucket is not None and used:
        # The estimate was charged at admission; charge the difference to the real usage.
        state.tokens_bucket.adjust(used - estimate, now)


def poll_breakers(runtime: Runtime, states: Sequence[UpstreamState], now: float) -> None:
    """Note breakers whose cooldown ran out (open -> half-open) as events."""
    for state in states:
        if state.breaker.poll(now) is Transition.HALF_OPENED:
            _note_transition(runtime, state, Transition.HALF_OPENED, time.time())


def _note_transition(
    runtime: Runtime, state: UpstreamState, transition: Transition, wall: float
) -> None:
    event, text = _TRANSITION_EVENTS[transition]
    runtime.add_event(wall, event, state.name, text)
