"""Failover policy: classify what an upstream attempt produced, and plan the next step. Pure.

Rules:
- No clock reads: `now`/`deadline` are monotonic seconds passed in; `wall_now` (time.time())
  is passed in only to turn HTTP dates and RFC 3339 stamps into "seconds from now".
- Randomness comes from an injected `random.Random` (full-jitter backoff).
- Header parsing never raises: a bad value is ignored. Every wait hint is capped at an hour.
- An outcome is one of: OK; RETRYABLE (try another candidate after backoff); KEY_REJECTED
  (401/403: try another key or upstream at once); CLIENT_ERROR (the request's own fault,
  returned to the client unchanged); CLIENT_GONE (nobody to answer).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

from core import fastjson
from core.errors import UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout

MAX_RETRY_AFTER = 3600.0  # an hour: longer hints are most likely wrong, and we re-check anyway
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
KEY_REJECTED_STATUSES = frozenset({401, 403})
_OVERLOADED = b"overloaded_error"
_MAX_ERROR_BODY = 64 * 1024  # error bodies are small; never parse a large success body
_ANTHROPIC_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")
_OPENAI_LIMITS = ("requests", "tokens")


class OutcomeKind(StrEnum):
    OK = "ok"
    RETRYABLE = "retryable"
    KEY_REJECTED = "key_rejected"
    CLIENT_ERROR = "client_error"
    CLIENT_GONE = "client_gone"


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    kind: OutcomeKind
    reason: str  # "429", "overloaded_error", "connect_error", "timeout:first_byte", ...
    status: int | None = None
    retry_after: float | None = None  # seconds from now, from the upstream's headers


# -- classification ---------------------------------------------------------------------


def classify_status(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, wall_now: float
) -> Outcome:
    """Classify an HTTP answer. `body` may be empty (a stream not read yet)."""
    if _is_overloaded(body):  # Anthropic reports overload on 529, but also on other codes
        kind, reason = OutcomeKind.RETRYABLE, "overloaded_error"
    elif 200 <= status < 300:
        return Outcome(kind=OutcomeKind.OK, reason=str(status), status=status)
    elif status in RETRYABLE_STATUSES:
        kind, reason = OutcomeKind.RETRYABLE, str(status)
    elif status in KEY_REJECTED_STATUSES:
        kind, reason = OutcomeKind.KEY_REJECTED, str(status)
    else:
        kind, reason = OutcomeKind.CLIENT_ERROR, str(status)
    retry_after = retry_after_from_headers(headers, wall_now=wall_now)
    return Outcome(kind=kind, reason=reason, status=status, retry_after=retry_after)


def _is_overloaded(body: bytes) -> bool:
    """Anthropic's `{"type": "error", "error": {"type": "overloaded_error", ...}}`."""
    if not body or len(body) > _MAX_ERROR_BODY or _OVERLOADED not in body:
        return False  # the substring test spares a JSON parse of every ordinary body
    try:
        doc = fastjson.loads(body)
    except ValueError:  # includes UnicodeDecodeError
        return False
    error = doc.get("error") if isinstance(doc, dict) else None
    return isinstance(error, dict) and error.get("type") == "overloaded_error"


def classify_error(exc: BaseException) -> Outcome:
    """Classify a transport failure (no HTTP answer). All of them are worth another try."""
    if isinstance(exc, UpstreamConnectError):
        reason = "connect_error"
    elif isinstance(exc, UpstreamTimeout):
        reason = f"timeout:{exc.phase}"
    elif isinstance(exc, UpstreamProtocolError):
        reason = "protocol_error"
    else:
        reason = f"error:{type(exc).__name__}"
    return Outcome(kind=OutcomeKind.RETRYABLE, reason=reason)


def stream_failure(reason: str) -> Outcome:
    """A stream that failed before its first content event reached the client."""
    return Outcome(kind=OutcomeKind.RETRYABLE, reason=reason)


# -- wait hints from headers ------------------------------------------------------------


def retry_after_from_headers(
    headers: list[tuple[bytes, bytes]], *, wall_now: float
) -> float | None:
    """The longest wait the headers ask for, in seconds (capped at an hour), or None.

    Sources: Retry-After (seconds or HTTP date), retry-after-ms, Anthropic's
    anthropic-ratelimit-*-reset (RFC 3339; a limit whose *-remaining header is present and
    not 0 is not exhausted, so its reset is skipped), OpenAI's x-ratelimit-reset-* (Go-style
    durations such as "6m0s").
    """
    h = _header_map(headers)
    hints: list[float] = []
    if (value := h.get("retry-after")) is not None:
        hints += _opt(_retry_after_value(value, wall_now))
    if (value := h.get("retry-after-ms")) is not None:
        ms = _number(value)
        hints += _opt(None if ms is None else ms / 1000.0)
    for limit in _ANTHROPIC_LIMITS:
        reset = h.get(f"anthropic-ratelimit-{limit}-reset")
        remaining = h.get(f"anthropic-ratelimit-{limit}-remaining")
        if reset is not None and _exhausted(remaining):
            hints += _opt(_future(_rfc3339(reset), wall_now))
    for limit in _OPENAI_LIMITS:
        if (value := h.get(f"x-ratelimit-reset-{limit}")) is not None:
            hints += _opt(go_duration(value))
    if not hints:
        return None
    return min(MAX_RETRY_AFTER, max(hints))


def _header_map(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers:
        # latin-1 never fails on bytes; garbage values simply fail to parse later
        out[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return out


def _opt(value: float | None) -> list[float]:
    return [] if value is None else [value]


def _number(text: str) -> float | None:
    """A finite, non-negative decimal number, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0.0 else None


def _retry_after_value(text: str, wall_now: float) -> float | None:
    if text[:1].isdigit() or text[:1] == ".":
        return _number(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - wall_now)  # a date in the past: go now


def _rfc3339(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _future(when: datetime | None, wall_now: float) -> float | None:
    if when is None:
        return None
    delta = when.timestamp() - wall_now
    return delta if delta > 0.0 else None


def _exhausted(remaining: str | None) -> bool:
    """Does this limit's reset apply? Yes when there is no remaining count to say otherwise."""
    if remaining is None:
        return True
    count = _number(remaining)
    return count is None or count <= 0.0  # an unreadable count does not hide the reset


_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # micro sign
    "μs": 1e-6,  # Greek mu; Go accepts both
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def go_duration(text: str) -> float | None:
    """Seconds in a Go duration ("1s", "6m0s", "20ms", "1h2m3.5s"), or None if malformed.
    A bare number is taken as seconds (some servers send that)."""
    text = text.strip()
    if not text:
        return None
    if (bare := _number(text)) is not None:
        return bare
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _GO_PART.match(text, pos)
        if match is None:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    return total if math.isfinite(total) else None


# -- planning ---------------------------------------------------------------------------


class GiveUpReason(StrEnum):
    NOT_RETRYABLE = "not_retryable"  # OK, CLIENT_ERROR or CLIENT_GONE: nothing to retry
    FALLBACK_DISABLED = "fallback_disabled"
    MAX_ATTEMPTS = "max_attempts"
    NO_CANDIDATES = "no_candidates"
    DEADLINE = "deadline"


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    delay: float  # seconds to wait before the next attempt


@dataclass(frozen=True, slots=True, kw_only=True)
class GiveUp:
    reason: str  # a GiveUpReason value


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter (AWS): uniform over [0, min(cap, base * 2**attempt)]; attempt from 0."""
    exponent = min(max(attempt, 0), 64)  # 2**64 * base is past any cap, and stays a float
    ceiling = min(cap, base * 2.0**exponent)
    return rng.uniform(0.0, max(0.0, ceiling))


def plan_next(
    *,
    outcome: Outcome,
    attempts_made: int,
    max_attempts: int,
    fallback: bool,
    remaining_candidates: int,
    now: float,
    deadline: float,
    base: float,
    cap: float,
    rng: random.Random,
) -> Retry | GiveUp:
    """After an attempt failed with `outcome`: wait `Retry.delay` and try the next
    candidate, or give up (the integrator then answers with the last outcome)."""
    if outcome.kind not in (OutcomeKind.RETRYABLE, OutcomeKind.KEY_REJECTED):
        return GiveUp(reason=GiveUpReason.NOT_RETRYABLE)
    if not fallback:
        return GiveUp(reason=GiveUpReason.FALLBACK_DISABLED)
    if attempts_made >= max_attempts:
        return GiveUp(reason=GiveUpReason.MAX_ATTEMPTS)
    if remaining_candidates <= 0:
        return GiveUp(reason=GiveUpReason.NO_CANDIDATES)
    if outcome.kind is OutcomeKind.KEY_REJECTED:
        delay = 0.0  # a bad key is not load: the next key or upstream can go at once
    else:
        delay = backoff_delay(attempts_made - 1, base=base, cap=cap, rng=rng)
    if now + delay >= deadline:
        return GiveUp(reason=GiveUpReason.DEADLINE)
    return Retry(delay=delay)
