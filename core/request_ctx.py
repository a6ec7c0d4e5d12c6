"""One client request's bookkeeping (`Ctx`) and the access-log line it becomes.

Rules: every field of the log line comes from here, so the line's shape is defined in one
place; nothing here holds a secret (keys never reach a Ctx).
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

from core.dialects.base import NO_USAGE, DialectSpec, Inbound, Usage

# Ids need to be unique, not secret: a random prefix per process and a counter (cheaper
# than a urandom call per request, which showed on the request path).
_ID_PREFIX = "req_" + secrets.token_hex(4)
_ids = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ids) & 0xFFFFFFFF:08x}"


@dataclass(slots=True, kw_only=True)
class Ctx:
    """One client request's bookkeeping, written to the access log at the end."""

    request_id: str
    spec: DialectSpec
    inbound: Inbound
    started: float
    wall: float
    attempts: list[dict[str, Any]] = field(default_factory=list)
    upstream: str | None = None
    model_sent: str | None = None
    status: int = 0
    ttfb: float | None = None
    usage: Usage = NO_USAGE
    error: str | None = None
    logged: bool = False

    def log_line(self, elapsed: float) -> dict[str, Any]:
        """The access-log entry: one JSON line per request."""
        u = self.usage
        return {
            "time": self.wall,
            "request_id": self.request_id,
            "dialect": str(self.inbound.dialect),
            "operation": str(self.inbound.operation),
            "model": self.inbound.model,
            "model_sent": self.model_sent,
            "upstream": self.upstream,
            "status": self.status,
            "latency_ms": round(elapsed * 1000, 2),
            "ttfb_ms": round(self.ttfb * 1000, 2) if self.ttfb is not None else None,
            "stream": self.inbound.stream,
            "attempts": self.attempts,
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_tokens": u.cache_read_tokens,
            "cache_write_tokens": u.cache_write_tokens,
            "error": self.error,
        }
