"""Prometheus text exposition: request counters and latency histogram kept here, upstream
gauges read from a Snapshot. Pure data; the server calls `render()` for GET /metrics."""

from __future__ import annotations

import bisect
from collections import Counter

from core.snapshot import Snapshot

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}


def _labels(**labels: str) -> str:
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels.items()
    )
    return "{" + inner + "}"


class Metrics:
    """Counters that live across config reloads (owned by the engine)."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()  # dialect, upstream, status
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0

    def observe(self, *, dialect: str, upstream: str, status: int, seconds: float) -> None:
        self.requests[(dialect, upstream, str(status))] += 1
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        self.latency_count += 1

    def render(self, snap: Snapshot) -> bytes:
        out: list[str] = []
        out += [
            "# HELP ccx_requests_total Client requests answered, by dialect, upstream, status.",
            "# TYPE ccx_requests_total counter",
        ]
        for (dialect, upstream, status), n in sorted(self.requests.items()):
            labels = _labels(dialect=dialect, upstream=upstream, status=status)
            out.append(f"ccx_requests_total{labels} {n}")
        out += self._latency_lines()
        out += [
            "# HELP ccx_failovers_total Attempts that moved on to another candidate.",
            "# TYPE ccx_failovers_total counter",
            f"ccx_failovers_total {snap.failovers}",
        ]
        out += _upstream_lines(snap)
        return ("\n".join(out) + "\n").encode()

    def _latency_lines(self) -> list[str]:
        name = "ccx_request_duration_seconds"
        lines = [f"# HELP {name} Time to answer a client request.", f"# TYPE {name} histogram"]
        running = 0
        for bound, count in zip(LATENCY_BUCKETS, self.latency_counts, strict=False):
            running += count
            lines.append(f'{name}_bucket{{le="{bound}"}} {running}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.latency_count}')
        lines.append(f"{name}_sum {self.latency_sum:.6f}")
        lines.append(f"{name}_count {self.latency_count}")
        return lines


def _upstream_lines(snap: Snapshot) -> list[str]:
    gauges: dict[str, tuple[str, str, list[str]]] = {
        "ccx_upstream_up": ("gauge", "1 if the upstream can take a request now.", []),
        "ccx_upstream_active": ("gauge", "Requests in flight.", []),
        "ccx_upstream_breaker_state": ("gauge", "0 closed, 1 half-open, 2 open.", []),
        "ccx_upstream_cooldown_seconds": ("gauge", "Retry-After cooldown left.", []),
        "ccx_upstream_attempts_total": ("counter", "Attempts sent upstream.", []),
        "ccx_upstream_failures_total": ("counter", "Failed attempts.", []),
        "ccx_upstream_tokens_total": ("counter", "Tokens by direction.", []),
        "ccx_upstream_bucket_level": ("gauge", "Token bucket level by kind.", []),
    }
    for u in snap.upstreams:
        lab = _labels(upstream=u.name)
        gauges["ccx_upstream_up"][2].append(f"ccx_upstream_up{lab} {int(u.available)}")
        gauges["ccx_upstream_active"][2].append(f"ccx_upstream_active{lab} {u.active}")
        gauges["ccx_upstream_breaker_state"][2].append(
            f"ccx_upstream_breaker_state{lab} {BREAKER_VALUE.get(u.breaker, 0)}"
        )
        gauges["ccx_upstream_cooldown_seconds"][2].append(
            f"ccx_upstream_cooldown_seconds{lab} {u.cooldown}"
        )
        gauges["ccx_upstream_attempts_total"][2].append(
            f"ccx_upstream_attempts_total{lab} {u.requests}"
        )
        gauges["ccx_upstream_failures_total"][2].append(
            f"ccx_upstream_failures_total{lab} {u.failures}"
        )
        for direction, n in (("input", u.input_tokens), ("output", u.output_tokens)):
            gauges["ccx_upstream_tokens_total"][2].append(
                f"ccx_upstream_tokens_total{_labels(upstream=u.name, direction=direction)} {n}"
            )
        for kind, bucket in (("requests", u.requests_bucket), ("tokens", u.tokens_bucket)):
            if bucket is not None:
                gauges["ccx_upstream_bucket_level"][2].append(
                    f"ccx_upstream_bucket_level{_labels(upstream=u.name, kind=kind)} {bucket.level}"
                )
    lines: list[str] = []
    for name, (kind, help_text, samples) in gauges.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]
    return lines
