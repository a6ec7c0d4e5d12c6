"""Immutable status snapshots: what the status API, metrics and the tray read.

Rules: frozen dataclasses only, built in one pass from a Runtime; keys appear masked;
times are seconds remaining (relative to `now`) or epoch seconds (`*_wall`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.health import BreakerState
from core.ratelimit import TokenBucket
from core.state import Event, Runtime, UpstreamState


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketSnapshot:
    level: float
    capacity: float
    reset_in: float  # seconds until full


@dataclass(frozen=True, slots=True, kw_only=True)
class KeySnapshot:
    masked: str
    cooldown: float


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamSnapshot:
    name: str
    provider: str
    base_url: str
    enabled: bool
    disabled_reason: str | None
    available: bool
    breaker: str  # closed | open | half_open
    consecutive_failures: int
    breaker_retry_in: float | None
    cooldown: float
    active: int
    max_concurrent: int | None
    weight: int
    priority: int
    requests_bucket: BucketSnapshot | None
    tokens_bucket: BucketSnapshot | None
    keys: tuple[KeySnapshot, ...]
    requests: int
    successes: int
    failures: int
    input_tokens: int
    output_tokens: int
    last_error: str | None
    last_error_wall: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    wall: float
    config_source: str
    config_error: str | None  # the last reload that failed, while the old config runs
    strategy: str
    listen: str
    upstreams: tuple[UpstreamSnapshot, ...]
    events: tuple[Event, ...]
    failovers: int
    requests_total: int
    active_total: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _bucket(bucket: TokenBucket | None, now: float) -> BucketSnapshot | None:
    if bucket is None:
        return None
    return BucketSnapshot(
        level=round(bucket.level(now), 3),
        capacity=bucket.capacity,
        reset_in=round(bucket.time_to_full(now), 3),
    )


def _upstream(state: UpstreamState, now: float) -> UpstreamSnapshot:
    cfg = state.config
    retry_at = state.breaker.retry_at()
    c = state.counters
    return UpstreamSnapshot(
        name=cfg.name,
        provider=str(cfg.provider),
        base_url=cfg.base_url,
        enabled=cfg.enabled,
        disabled_reason=cfg.disabled_reason,
        available=state.wait_time(now) == 0.0,
        breaker=str(state.breaker.state(now)),
        consecutive_failures=state.breaker.consecutive_failures,
        breaker_retry_in=round(max(0.0, retry_at - now), 3)
        if retry_at is not None and state.breaker.state(now) is BreakerState.OPEN
        else None,
        cooldown=round(state.cooldown.remaining(now), 3),
        active=state.active,
        max_concurrent=cfg.max_concurrent,
        weight=cfg.weight,
        priority=cfg.priority,
        requests_bucket=_bucket(state.requests_bucket, now),
        tokens_bucket=_bucket(state.tokens_bucket, now),
        keys=tuple(
            KeySnapshot(masked=k.secret.masked, cooldown=round(k.cooldown.remaining(now), 3))
            for k in state.keys
        ),
        requests=c.requests,
        successes=c.successes,
        failures=c.failures,
        input_tokens=c.input_tokens,
        output_tokens=c.output_tokens,
        last_error=state.last_error,
        last_error_wall=state.last_error_wall,
    )


def take_snapshot(
    runtime: Runtime, *, now: float, wall: float, config_error: str | None = None
) -> Snapshot:
    ups = tuple(_upstream(s, now) for s in runtime.upstreams.values())
    listen = runtime.config.listen
    return Snapshot(
        wall=wall,
        config_source=runtime.config.source,
        config_error=config_error,
        strategy=str(runtime.config.routing.strategy),
        listen=f"http://{listen.host}:{listen.port}",
        upstreams=ups,
        events=tuple(runtime.events),
        failovers=runtime.failovers,
        requests_total=sum(u.requests for u in ups),
        active_total=sum(u.active for u in ups),
    )
