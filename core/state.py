"""The runtime: one config plus the mutable per-upstream state, and immutable snapshots.

Rules:
- A `Runtime` is built from a `Config` (build-then-swap): `Runtime.build(config, previous,
  now)` carries health, buckets, counters and policy state over for upstreams whose name is
  unchanged, so a reload never forgets that an upstream is failing.
- Only the engine's trio thread mutates a Runtime; readers elsewhere (the tray) get a
  frozen `Snapshot` from `snapshot()`.
- Pure: no trio, no clock reads; callers pass `now` (monotonic) and `wall` (epoch).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from core.config import BreakerConfig, Config, Rate, UpstreamConfig
from core.health import Breaker, Cooldown
from core.ratelimit import TokenBucket, bucket_for
from core.routing import CandidateView, Policy, make_policy, model_matches
from core.secrets import Secret

EVENT_LIMIT = 200
EventKind = Literal[
    "failover",
    "breaker_opened",
    "breaker_half_open",
    "breaker_closed",
    "cooldown",
    "key_cooldown",
    "config_reloaded",
    "config_error",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    wall: float  # epoch seconds
    kind: EventKind
    upstream: str | None
    message: str


@dataclass(slots=True)
class KeyState:
    secret: Secret
    cooldown: Cooldown = field(default_factory=Cooldown)


@dataclass(slots=True)
class Counters:
    requests: int = 0  # attempts sent to this upstream
    successes: int = 0
    failures: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(slots=True, kw_only=True)
class UpstreamState:
    config: UpstreamConfig
    breaker: Breaker
    cooldown: Cooldown
    keys: list[KeyState]
    requests_bucket: TokenBucket | None
    tokens_bucket: TokenBucket | None
    active: int = 0
    key_cursor: int = 0
    counters: Counters = field(default_factory=Counters)
    last_error: str | None = None
    last_error_wall: float | None = None
    name: str = field(init=False)  # config.name, read several times per request

    def __post_init__(self) -> None:
        self.name = self.config.name

    def wait_time(self, now: float, token_estimate: float = 0.0) -> float | None:
        """0.0 when a request may go now; seconds until it may; None if it never will
        (disabled) or the wait has no known end (concurrency cap: ends when one finishes)."""
        if not self.config.enabled:
            return None
        waits = [self.cooldown.remaining(now)]
        if not self.breaker.available(now):
            retry_at = self.breaker.retry_at()
            waits.append(max(0.0, retry_at - now) if retry_at is not None else 1.0)
        if self.keys:
            waits.append(min(k.cooldown.remaining(now) for k in self.keys))
        if self.requests_bucket is not None:
            waits.append(self.requests_bucket.wait_time(1.0, now))
        if self.tokens_bucket is not None and token_estimate:
            waits.append(self.tokens_bucket.wait_time(token_estimate, now))
        wait = max(waits)
        limit = self.config.max_concurrent
        if wait == 0.0 and limit is not None and self.active >= limit:
            return None
        return wait

    def ready(self, now: float, token_estimate: float = 0.0) -> bool:
        """`wait_time(...) == 0.0`, answered without the arithmetic in the common case
        (no buckets, breaker closed, nothing cooling down, below the concurrency cap): this
        runs for every candidate of every request."""
        cfg = self.config
        limit = cfg.max_concurrent
        if (
            cfg.enabled
            and self.requests_bucket is None
            and self.tokens_bucket is None
            and self.breaker.closed
            and now >= self.cooldown.until
            and (limit is None or self.active < limit)
            and (not self.keys or now >= self.keys[0].cooldown.until)
        ):
            return True
        return self.wait_time(now, token_estimate) == 0.0

    def rate_limited(self, now: float, token_estimate: float = 0.0) -> bool:
        """Held back by pacing (cooldown, buckets, concurrency) rather than ill health:
        the difference between answering 429 and 503 when nothing can take a request."""
        requests, tokens = self.requests_bucket, self.tokens_bucket
        limit = self.config.max_concurrent
        return (
            self.cooldown.active(now)
            or (requests is not None and requests.wait_time(1.0, now) > 0.0)
            or (tokens is not None and tokens.wait_time(token_estimate, now) > 0.0)
            or (limit is not None and self.active >= limit)
        )

    def pick_key(self, now: float) -> KeyState | None:
        """The next key not in cooldown, rotating through the pool; None if none has keys."""
        count = len(self.keys)
        for step in range(count):
            key = self.keys[(self.key_cursor + step) % count]
            if not key.cooldown.active(now):
                self.key_cursor = (self.key_cursor + step + 1) % count
                return key
        return None


def _new_state(config: UpstreamConfig, routing_breaker: BreakerConfig, now: float) -> UpstreamState:
    return UpstreamState(
        config=config,
        breaker=Breaker(
            threshold=routing_breaker.failure_threshold,
            cooldown=routing_breaker.cooldown,
            max_cooldown=routing_breaker.max_cooldown,
        ),
        cooldown=Cooldown(),
        keys=[KeyState(secret=s) for s in config.api_keys],
        requests_bucket=bucket_for(config.rate_limit, now) if config.rate_limit else None,
        tokens_bucket=bucket_for(config.token_limit, now) if config.token_limit else None,
    )


def _carry_over(old: UpstreamState, config: UpstreamConfig, now: float) -> UpstreamState:
    """Keep health, counters and buckets of an upstream whose name is unchanged."""
    old_keys = {k.secret.reveal(): k for k in old.keys}
    keys = [old_keys.get(s.reveal()) or KeyState(secret=s) for s in config.api_keys]
    requests_bucket = _keep_bucket(old.requests_bucket, config.rate_limit, now)
    tokens_bucket = _keep_bucket(old.tokens_bucket, config.token_limit, now)
    return UpstreamState(
        config=config,
        breaker=old.breaker,
        cooldown=old.cooldown,
        keys=keys,
        requests_bucket=requests_bucket,
        tokens_bucket=tokens_bucket,
        active=old.active,
        counters=old.counters,
        last_error=old.last_error,
        last_error_wall=old.last_error_wall,
    )


def _keep_bucket(old: TokenBucket | None, rate: Rate | None, now: float) -> TokenBucket | None:
    """A reload keeps the bucket's level (no fresh burst, no forgotten debt)."""
    if rate is None:
        return None
    if old is None:
        return bucket_for(rate, now)
    old.reconfigure(rate=rate.per_second, capacity=rate.amount, now=now)
    return old


_CANDIDATES_CACHED = 1024


class Runtime:
    def __init__(
        self,
        config: Config,
        upstreams: dict[str, UpstreamState],
        policy: Policy,
        events: deque[Event],
    ) -> None:
        self.config = config
        self.upstreams = upstreams
        self.policy = policy
        self.events = events
        self.failovers = 0
        # candidates() by (model, client dialect, dialects): the config never changes under
        # a Runtime (a reload builds a new one), so neither does the answer.
        self._candidates: dict[tuple[str, str, frozenset[str]], tuple[UpstreamState, ...]] = {}

    @classmethod
    def build(cls, config: Config, previous: Runtime | None, now: float) -> Runtime:
        states: dict[str, UpstreamState] = {}
        for up in config.upstreams:
            old = previous.upstreams.get(up.name) if previous else None
            states[up.name] = (
                _carry_over(old, up, now) if old else _new_state(up, config.routing.breaker, now)
            )
        same_strategy = previous and previous.config.routing.strategy == config.routing.strategy
        if previous is not None and same_strategy:
            policy = previous.policy
            policy.forget(set(previous.upstreams) - set(states))
        else:
            policy = make_policy(config.routing.strategy)
        events = previous.events if previous else deque(maxlen=EVENT_LIMIT)
        runtime = cls(config, states, policy, events)
        if previous is not None:
            runtime.failovers = previous.failovers
        return runtime

    def add_event(self, wall: float, kind: EventKind, upstream: str | None, message: str) -> None:
        self.events.append(Event(wall=wall, kind=kind, upstream=upstream, message=message))

    def candidates(
        self, model: str, client_dialect: str, dialects: frozenset[str]
    ) -> tuple[UpstreamState, ...]:
        """Enabled upstreams that serve `model` and speak one of `dialects`, config order.

        An upstream of another dialect than the client's must know what to send: a
        `model`, a `model_map` entry or explicit `models` patterns; else a claude-* name
        would go to a Gemini endpoint just because it had no `models` list. Remembered per
        key (the tuple is shared between requests)."""
        key = (model, client_dialect, dialects)
        out = self._candidates.get(key)
        if out is None:
            if len(self._candidates) >= _CANDIDATES_CACHED:
                self._candidates.clear()  # model names come from clients: bounded
            found = self._find_candidates(model, client_dialect, dialects)
            out = self._candidates[key] = tuple(found)
        return out

    def _find_candidates(
        self, model: str, client_dialect: str, dialects: frozenset[str]
    ) -> list[UpstreamState]:
        out = []
        for s in self.upstreams.values():
            cfg = s.config
            if not cfg.enabled or cfg.provider not in dialects:
                continue
            if not model_matches(cfg.models, model):
                continue
            if cfg.provider != client_dialect and not (
                cfg.model or model in cfg.model_map or cfg.models
            ):
                continue
            out.append(s)
        return out

    def order(self, available: list[UpstreamState]) -> list[UpstreamState]:
        if len(available) == 1:
            self.policy.picked_alone(available[0].name)
            return available
        views = [
            CandidateView(
                name=s.name, weight=s.config.weight, priority=s.config.priority, active=s.active
            )
            for s in available
        ]
        by_name = {s.name: s for s in available}
        return [by_name[name] for name in self.policy.order(views)]
