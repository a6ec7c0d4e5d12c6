"""The bench table: figures, ratios against direct, targets, as markdown.

Owns: `render(report) -> str`, pure (no I/O). The targets are issue 3's; a row whose
figure is missing (the proxy did not start, a phase was skipped) says n/a, never passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.procs import Cores
    from bench.run import Phase, Suite

Check = Callable[[float], bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    date: str
    machine: str
    profile: str
    cores: Cores
    events_per_stream: int  # SSE events in one throughput-phase stream
    open_events: int  # SSE events in one held-open stream
    open_deltas: int  # text deltas in one held-open stream
    slow_deltas: int  # text deltas in one slow stream
    slow_delay: float  # seconds between deltas of the slow streams
    direct: Suite
    same: Suite
    cross: Suite


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    figure: str
    direct: str
    proxy: str
    versus: str
    target: str
    verdict: str


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:.3f} ms"


def _verdict(value: float | None, check: Check | None) -> str:
    if check is None:
        return ""
    if value is None or math.isnan(value):
        return "n/a"
    return "ok" if check(value) else "**miss**"


def _phase(suite: Suite, name: str) -> Phase | None:
    return suite.phases.get(name)


def _q(phase: Phase | None, q: float, *, first: bool = False) -> float | None:
    if phase is None or not phase.result.completed:
        return None
    return phase.result.first_event(q) if first else phase.result.latency(q)


def _at_most(limit: float) -> Check:
    return lambda v: v <= limit


def _at_least(floor: float) -> Check:
    return lambda v: v >= floor


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def latency_rows(r: Report) -> list[Row]:
    rows = []
    cases = [
        ("latency p50, 1 client, non-stream", "single", 50, False, 0.0005),
        ("latency p99, 1 client, non-stream", "single", 99, False, 0.002),
        ("first event p50, 1 client, stream", "single_stream", 50, True, 0.0005),
    ]
    for label, name, q, first, limit in cases:
        d = _q(_phase(r.direct, name), q, first=first)
        p = _q(_phase(r.same, name), q, first=first)
        added = _sub(p, d)
        rows.append(
            Row(
                figure=label,
                direct=_ms(d),
                proxy=_ms(p),
                versus=("+" if (added or 0) >= 0 else "") + _ms(added),
                target=f"added <= {limit * 1000:g} ms",
                verdict=_verdict(added, _at_most(limit)),
            )
        )
    return rows


def throughput_rows(r: Report) -> list[Row]:
    rows = []
    for label, name, floor in (
        ("req/s, 64 clients, non-stream", "many", 2000),
        (f"req/s, 64 clients, stream ({r.events_per_stream} events)", "many_stream", 1500),
    ):
        d, p = _phase(r.direct, name), _phase(r.same, name)
        drps = d.result.rps if d else None
        prps = p.result.rps if p and p.result.completed else None
        ratio = _div(prps, drps)
        rows.append(
            Row(
                figure=label + _failures(p),
                direct=_num(drps),
                proxy=_num(prps),
                versus="n/a" if ratio is None else f"{ratio:.2f} x",
                target=f">= {floor:,}",
                verdict=_verdict(prps, _at_least(floor)),
            )
        )
    for label, name in (("p99/p50, 64 clients, non-stream", "many"),
                        ("p99/p50, 64 clients, stream", "many_stream")):  # fmt: skip
        dq = _div(_q(_phase(r.direct, name), 99), _q(_phase(r.direct, name), 50))
        pq = _div(_q(_phase(r.same, name), 99), _q(_phase(r.same, name), 50))
        rows.append(
            Row(
                figure=label,
                direct=_x(dq),
                proxy=_x(pq),
                versus="",
                target="<= 3",
                verdict=_verdict(pq, lambda v: v <= 3.0),
            )
        )
    return rows


def _failures(phase: Phase | None) -> str:
    if phase is None or not phase.result.failed:
        return ""
    bad = {k: v for k, v in sorted(phase.result.statuses.items()) if not 200 <= k < 300}
    lost = phase.result.failed - sum(bad.values())
    parts = [f"{n} x {'bad body ' if k < 0 else ''}{abs(k)}" for k, n in bad.items()]
    parts += [f"{lost} x transport error"] if lost else []
    return f" ({phase.result.failed} failed: {', '.join(parts)})"


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f}"


def _x(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def per_event_cpu(r: Report) -> float | None:
    """Proxy CPU of the paced (held-open) streams beyond a plain request's, per SSE event."""
    op, many = _phase(r.same, "open"), _phase(r.same, "many")
    base = many.proxy_cpu_per_request() if many else None
    if op is None or op.proxy_cpu is None or base is None or not op.result.completed:
        return None
    n = op.result.completed
    return max(0.0, op.proxy_cpu - n * base) / (n * r.open_events)


def cpu_rows(r: Report) -> list[Row]:
    many, stream = _phase(r.same, "many"), _phase(r.same, "many_stream")
    req = many.proxy_cpu_per_request() if many else None
    per_stream = stream.proxy_cpu_per_request() if stream else None
    cross = _phase(r.cross, "many_stream")
    cross_stream = cross.proxy_cpu_per_request() if cross else None
    ratio = _div(cross_stream, per_stream)
    event = per_event_cpu(r)
    return [
        Row(figure="proxy CPU per request, non-stream", direct="", proxy=_ms(req), versus="",
            target="<= 0.5 ms", verdict=_verdict(req, lambda v: v <= 0.0005)),
        Row(figure=f"proxy CPU per stream ({r.events_per_stream} events, unpaced)", direct="",
            proxy=_ms(per_stream), versus="", target="", verdict=""),
        Row(figure=f"proxy CPU per relayed event (paced streams, {r.open_events} events)",
            direct="", proxy="n/a" if event is None else f"{event * 1e6:.1f} us", versus="",
            target="<= 20 us", verdict=_verdict(event, lambda v: v <= 20e-6)),
        Row(figure="cross-dialect stream CPU (Anthropic client, OpenAI upstream)" +
            _failures(cross), direct="", proxy=_ms(cross_stream),
            versus="n/a" if ratio is None else f"{ratio:.2f} x same-dialect",
            target="<= 2 x", verdict=_verdict(ratio, lambda v: v <= 2.0)),
    ]  # fmt: skip


def _mb(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} MB"


def memory_rows(r: Report) -> list[Row]:
    op = _phase(r.same, "open")
    n_open = "n/a"
    if op is not None:
        res = op.result
        n_open = f"{res.completed}/{res.completed + res.failed} completed, slowest " + (
            f"{max(res.latencies, default=float('nan')):.2f} s "
            f"(ideal {(r.open_deltas + 1) * r.slow_delay:.2f} s)"
        )
    rows = [
        Row(figure="proxy RSS idle (after start)", direct="", proxy=_mb(r.same.rss_idle),
            versus=f"after warm-up {_mb(r.same.rss_warm)}", target="<= 50 MB",
            verdict=_verdict(r.same.rss_idle, lambda v: v <= 50)),
        Row(figure="proxy RSS peak, held-open streams", direct="",
            proxy=_mb(op.rss_peak if op else None), versus=n_open,
            target="<= 80 MB at 500",
            verdict=_verdict(op.rss_peak if op and op.result.failed == 0 else None,
                             lambda v: v <= 80)),
    ]  # fmt: skip
    soak = _phase(r.same, "soak")
    if soak is not None and soak.rss_before is not None and soak.rss_after is not None:
        growth = soak.rss_after - soak.rss_before
        rows.append(
            Row(figure=f"proxy RSS over {soak.result.completed:,} requests" + _failures(soak),
                direct="", proxy=f"{_mb(soak.rss_before)} -> {_mb(soak.rss_after)}",
                versus=f"{growth:+.1f} MB", target="flat (<= +5 MB)",
                verdict=_verdict(growth, lambda v: v <= 5.0))
        )  # fmt: skip
    slow = _phase(r.same, "slow")
    if slow is not None:
        total = slow.result.completed + slow.result.failed
        ideal = (r.slow_deltas + 1) * r.slow_delay  # a pause before each delta and the tail
        worst = max(slow.result.latencies, default=float("nan"))
        rows.append(
            Row(figure=f"{total:,} concurrent slow streams (every {r.slow_delay * 1000:g} ms)",
                direct="", proxy=f"{slow.result.completed:,} completed",
                versus=f"slowest {worst:.2f} s (ideal {ideal:.2f} s)",
                target="all complete", verdict=_verdict(
                    float(slow.result.failed), lambda v: v == 0))
        )  # fmt: skip
    return rows


def harness_lines(r: Report) -> list[str]:
    lines = []
    for label, name in (("non-stream", "many"), ("stream", "many_stream")):
        d = _phase(r.direct, name)
        if d is None:
            continue
        res = d.result
        fake = d.fake_cpu / res.completed * 1e6 if res.completed else float("nan")
        lines.append(
            f"- direct, 64 clients, {label}: {res.rps:,.0f} req/s; load generator CPU share "
            f"{res.cpu_share:.2f}; fake upstream CPU {fake:.0f} us per request"
        )
    pin = (
        f"proxy on CPU {sorted(r.cores.proxy)}, fake upstream + load generator on CPU "
        f"{sorted(r.cores.harness)}"
        if r.cores.proxy and r.cores.harness
        else "not pinned (one CPU)"
    )
    lines.append(f"- pinning: {pin}")
    return lines


def render(r: Report) -> str:
    rows = latency_rows(r) + throughput_rows(r) + cpu_rows(r) + memory_rows(r)
    out = [
        f"### ccx-tray bench, {r.date} ({r.profile})",
        "",
        f"Machine: {r.machine}. Fake upstream on loopback answering at once; Anthropic "
        f"`/v1/messages`, about 200-byte requests; streams of {r.events_per_stream} SSE events.",
        "",
        "| figure | direct | proxy | proxy vs direct | target | |",
        "|---|---|---|---|---|---|",
    ]
    out += [f"| {w.figure} | {w.direct} | {w.proxy} | {w.versus} | {w.target} | {w.verdict} |"
            for w in rows]  # fmt: skip
    out += ["", "Harness headroom:", *harness_lines(r)]
    for label, suite in (("proxy", r.same), ("cross-dialect proxy", r.cross)):
        if suite.error:
            out += ["", f"The {label} did not run: ", "```", suite.error.strip(), "```"]
    return "\n".join(out) + "\n"
