"""The bench table: figures, ratios against direct and against the floor, targets, as markdown.

Owns: `render(report) -> str`, pure (no I/O). The targets are issue 3's; a row whose
figure is missing (the proxy did not start, a phase was skipped) says n/a, never passes.

Rules:
- Every repeated phase has one Phase per round; a figure is the median over the rounds
  of that figure per round (a percentile, a rate, CPU per request), never of pooled
  samples, so one noisy round moves it least. CPU cells also show [min-max] over rounds.
- "proxy vs direct" is what the proxy adds to the path; "proxy vs floor" is what it adds
  beyond a bytes-only trio relay (bench/floor.py), i.e. beyond the runtime's own price.
  For latency both are paired: the median over rounds of (proxy - baseline) within each
  round, whose phases ran back to back, so the machine's drift between rounds cancels.
- Failures are summed over all rounds and shown next to the figure, by status.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.cells import (
    at_least,
    at_most,
    cpu_versus,
    div,
    mb,
    median,
    ms,
    num,
    plus,
    present,
    ratio,
    spread,
    sub,
    times,
    us,
    verdict,
)

if TYPE_CHECKING:
    from bench.procs import Cores
    from bench.run import Phase, Suite


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    date: str
    machine: str
    profile: str
    rounds: int
    cores: Cores
    events_per_stream: int  # SSE events in one throughput-phase stream
    open_events: int  # SSE events in one held-open stream
    open_deltas: int  # text deltas in one held-open stream
    slow_deltas: int  # text deltas in one slow stream
    slow_delay: float  # seconds between deltas of the slow streams
    direct: Suite
    same: Suite
    floor: Suite
    cross: Suite
    nginx: Suite  # the reference relay; no phases when nginx is not installed
    nginx_version: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    figure: str
    direct: str = ""
    floor: str = ""
    proxy: str = ""
    versus: str = ""  # proxy vs direct
    vs_floor: str = ""  # proxy vs floor
    target: str = ""
    verdict: str = ""


# ---------------------------------------------------------------- numbers


def _rounds(suite: Suite, name: str) -> list[Phase]:
    return suite.phases.get(name, [])


def _done(phases: list[Phase]) -> list[Phase]:
    return [p for p in phases if p.result.completed]


def _q(phases: list[Phase], q: float, *, first: bool = False) -> float | None:
    per_round = (p.result.first_event(q) if first else p.result.latency(q) for p in _done(phases))
    return median(per_round)


def _q_added(
    phases: list[Phase], baseline: list[Phase], q: float, *, first: bool = False
) -> float | None:
    """Median over rounds of (phase's quantile - baseline's quantile in the same round)."""

    def value(p: Phase) -> float | None:
        if not p.result.completed:
            return None
        return p.result.first_event(q) if first else p.result.latency(q)

    return median(sub(value(a), value(b)) for a, b in zip(phases, baseline, strict=False))


def _rps(phases: list[Phase]) -> float | None:
    return median(p.result.rps for p in _done(phases))


def _tail_ratio(phases: list[Phase]) -> float | None:
    """p99/p50 per round, median over rounds."""
    return median(div(p.result.latency(99), p.result.latency(50)) for p in _done(phases))


def _cpu_values(phases: list[Phase]) -> list[float]:
    return present(p.cpu_per_request() for p in phases)


def per_event_values(suite: Suite, open_events: int) -> list[float]:
    """CPU per SSE event of the paced (held-open) streams beyond a plain request's, per round.

    The plain request's CPU is the median of the 64-client non-stream rounds of the same
    process; the rest of a paced stream's CPU is its events' (one upstream read and one
    client write each, 100 ms apart).
    """
    base = median(_cpu_values(_rounds(suite, "many")))
    out = []
    for op in _done(_rounds(suite, "open")):
        if op.server_cpu is None or base is None:
            continue
        n = op.result.completed
        out.append(max(0.0, op.server_cpu - n * base) / (n * open_events))
    return out


def unpaced_event_cpu(suite: Suite, events: int) -> float | None:
    """CPU per SSE event in the issue's reference setup (an upstream answering at once):
    (CPU per 64-client stream - CPU per 64-client request) / events, from the medians."""
    stream = median(_cpu_values(_rounds(suite, "many_stream")))
    plain = median(_cpu_values(_rounds(suite, "many")))
    extra = sub(stream, plain)
    return None if extra is None else max(0.0, extra) / events


def per_event_cpu(r: Report) -> float | None:
    """The proxy's CPU per relayed event (median over rounds)."""
    return median(per_event_values(r.same, r.open_events))


def _failures(phases: list[Phase], who: str = "") -> str:
    failed = sum(p.result.failed for p in phases)
    if not failed:
        return ""
    statuses: Counter[int] = Counter()
    for p in phases:
        statuses.update(p.result.statuses)
    bad = {k: v for k, v in sorted(statuses.items()) if not 200 <= k < 300}
    lost = failed - sum(bad.values())
    parts = [f"{n} x {'bad body ' if k < 0 else ''}{abs(k)}" for k, n in bad.items()]
    parts += [f"{lost} x transport error"] if lost else []
    return f" ({who}{failed} failed: {', '.join(parts)})"


def _both_failures(r: Report, name: str) -> str:
    return _failures(_rounds(r.same, name)) + _failures(_rounds(r.floor, name), "floor: ")


# ---------------------------------------------------------------- rows


# The 1-client latency figures: label, phase, percentile, first event?, the added limit.
LATENCY_CASES = (
    ("latency p50, 1 client, non-stream", "single", 50, False, 0.0005),
    ("latency p99, 1 client, non-stream", "single", 99, False, 0.002),
    ("first event p50, 1 client, stream", "single_stream", 50, True, 0.0005),
)


def latency_rows(r: Report) -> list[Row]:
    rows = []
    for label, name, q, first, limit in LATENCY_CASES:
        direct, floor, same = (_rounds(s, name) for s in (r.direct, r.floor, r.same))
        d, f, p = (_q(phases, q, first=first) for phases in (direct, floor, same))
        added = _q_added(same, direct, q, first=first)
        beyond = _q_added(same, floor, q, first=first)
        rows.append(
            Row(
                figure=label + _both_failures(r, name),
                direct=ms(d),
                floor=ms(f),
                proxy=ms(p),
                versus=plus(ms(added), added),
                vs_floor=plus(ms(beyond), beyond),
                target=f"added <= {limit * 1000:g} ms",
                verdict=verdict(added, at_most(limit)),
            )
        )
    return rows


def throughput_rows(r: Report) -> list[Row]:
    rows = []
    for label, name, minimum in (
        ("req/s, 64 clients, non-stream", "many", 2000),
        (f"req/s, 64 clients, stream ({r.events_per_stream} events)", "many_stream", 1500),
    ):
        d, f, p = (_rps(_rounds(s, name)) for s in (r.direct, r.floor, r.same))
        rows.append(
            Row(
                figure=label + _both_failures(r, name),
                direct=num(d),
                floor=num(f),
                proxy=num(p),
                versus=ratio(div(p, d)),
                vs_floor=ratio(div(p, f)),
                target=f">= {minimum:,}",
                verdict=verdict(p, at_least(minimum)),
            )
        )
    for label, name in (("p99/p50, 64 clients, non-stream", "many"),
                        ("p99/p50, 64 clients, stream", "many_stream")):  # fmt: skip
        d, f, p = (_tail_ratio(_rounds(s, name)) for s in (r.direct, r.floor, r.same))
        rows.append(
            Row(figure=label, direct=times(d), floor=times(f), proxy=times(p), target="<= 3",
                verdict=verdict(p, at_most(3.0)))
        )  # fmt: skip
    return rows


def cpu_rows(r: Report) -> list[Row]:
    rows = []
    for label, name, limit in (
        ("CPU per request, non-stream", "many", 0.0005),
        (f"CPU per stream ({r.events_per_stream} events, unpaced)", "many_stream", None),
    ):
        pv, fv = _cpu_values(_rounds(r.same, name)), _cpu_values(_rounds(r.floor, name))
        p = median(pv)
        rows.append(
            Row(
                figure=label,
                floor=spread(fv, ms),
                proxy=spread(pv, ms),
                vs_floor=cpu_versus(p, median(fv), ms),
                target="" if limit is None else f"<= {limit * 1000:g} ms",
                verdict=verdict(p, None if limit is None else at_most(limit)),
            )
        )
    unpaced, unpaced_floor = (unpaced_event_cpu(s, r.events_per_stream) for s in (r.same, r.floor))
    rows.append(
        Row(
            figure=f"CPU per relayed event (reference: unpaced, {r.events_per_stream} events)",
            floor=us(unpaced_floor),
            proxy=us(unpaced),
            vs_floor=cpu_versus(unpaced, unpaced_floor, us),
            target="<= 20 us",
            verdict=verdict(unpaced, at_most(20e-6)),
        )
    )
    pe, fe = per_event_values(r.same, r.open_events), per_event_values(r.floor, r.open_events)
    event = median(pe)
    rows.append(
        Row(
            figure=f"CPU per relayed event (paced streams, {r.open_events} events)",
            floor=spread(fe, us),
            proxy=spread(pe, us),
            vs_floor=cpu_versus(event, median(fe), us),
            target="above the floor <= 20 us",
            verdict=verdict(sub(event, median(fe)), at_most(20e-6)),
        )
    )
    cross = _rounds(r.cross, "many_stream")
    cv = _cpu_values(cross)
    vs_same = div(median(cv), median(_cpu_values(_rounds(r.same, "many_stream"))))
    rows.append(
        Row(
            figure="cross-dialect stream CPU (Anthropic client, OpenAI upstream)"
            + _failures(cross),
            proxy=spread(cv, ms),
            versus="n/a" if vs_same is None else f"{vs_same:.2f} x same-dialect",
            target="<= 2 x",
            verdict=verdict(vs_same, at_most(2.0)),
        )
    )
    return rows


def _open_summary(phases: list[Phase], r: Report) -> str:
    if not phases:
        return "n/a"
    completed = sum(p.result.completed for p in phases)
    total = completed + sum(p.result.failed for p in phases)
    worst = max((max(p.result.latencies, default=math.nan) for p in phases), default=math.nan)
    ideal = (r.open_deltas + 1) * r.slow_delay
    return f"{completed}/{total} completed, slowest {worst:.2f} s (ideal {ideal:.2f} s)"


def _peak(phases: list[Phase]) -> float | None:
    peaks = present(p.rss_peak for p in phases)
    return max(peaks) if peaks else None


def memory_rows(r: Report) -> list[Row]:
    op, fop = _rounds(r.same, "open"), _rounds(r.floor, "open")
    peak, fpeak = _peak(op), _peak(fop)
    all_done = bool(op) and not any(p.result.failed for p in op)
    idle_added, peak_added = sub(r.same.rss_idle, r.floor.rss_idle), sub(peak, fpeak)
    rows = [
        Row(figure="RSS idle (after start)", floor=mb(r.floor.rss_idle),
            proxy=mb(r.same.rss_idle), versus=f"after warm-up {mb(r.same.rss_warm)}",
            vs_floor=plus(mb(idle_added), idle_added), target="<= 50 MB",
            verdict=verdict(r.same.rss_idle, at_most(50))),
        Row(figure=f"RSS peak, held-open streams (max of {len(op)} rounds)"
            + _both_failures(r, "open"),
            floor=mb(fpeak), proxy=mb(peak), versus=_open_summary(op, r),
            vs_floor=plus(mb(peak_added), peak_added), target="<= 80 MB at 500",
            verdict=verdict(peak if all_done else None, at_most(80))),
    ]  # fmt: skip
    for soak in _rounds(r.same, "soak"):
        if soak.rss_before is None or soak.rss_after is None:
            continue
        growth = soak.rss_after - soak.rss_before
        rows.append(
            Row(figure=f"proxy RSS over {soak.result.completed:,} requests"
                + _failures([soak]),
                proxy=f"{mb(soak.rss_before)} -> {mb(soak.rss_after)}",
                versus=f"{growth:+.1f} MB", target="flat (<= +5 MB)",
                verdict=verdict(growth, at_most(5.0)))
        )  # fmt: skip
    for slow in _rounds(r.same, "slow"):
        total = slow.result.completed + slow.result.failed
        ideal = (r.slow_deltas + 1) * r.slow_delay  # a pause before each delta and the tail
        worst = max(slow.result.latencies, default=float("nan"))
        rows.append(
            Row(figure=f"{total:,} concurrent slow streams (every {r.slow_delay * 1000:g} ms)",
                proxy=f"{slow.result.completed:,} completed",
                versus=f"slowest {worst:.2f} s (ideal {ideal:.2f} s)",
                target="all complete",
                verdict=verdict(float(slow.result.failed), lambda v: v == 0))
        )  # fmt: skip
    return rows


def reference_lines(r: Report) -> list[str]:
    """nginx beside direct and the proxy, same rounds: the issue's floor on this machine."""
    if not any(r.nginx.phases.values()):
        return []
    nx, same, direct = r.nginx, r.same, r.direct
    rows = []
    for label, name, q, first, _ in LATENCY_CASES:
        n_ph, p_ph, d_ph = (_rounds(s, name) for s in (nx, same, direct))
        added, beyond = _q_added(n_ph, d_ph, q, first=first), _q_added(p_ph, n_ph, q, first=first)
        cells = [ms(_q(phases, q, first=first)) for phases in (d_ph, n_ph, p_ph)]
        label += _failures(n_ph, "nginx: ")
        rows.append((label, *cells, plus(ms(added), added), plus(ms(beyond), beyond)))
    for label, name in (("req/s, 64 clients, non-stream", "many"),
                        ("req/s, 64 clients, stream", "many_stream")):  # fmt: skip
        d, n, p = (_rps(_rounds(s, name)) for s in (direct, nx, same))
        rows.append((label + _failures(_rounds(nx, name), "nginx: "), num(d), num(n), num(p),
                     ratio(div(n, d)), ratio(div(p, n))))  # fmt: skip
    for label, name in (("CPU per request, non-stream", "many"),
                        ("CPU per stream, unpaced", "many_stream")):  # fmt: skip
        nv, pv = _cpu_values(_rounds(nx, name)), _cpu_values(_rounds(same, name))
        rows.append((label, "", spread(nv, ms), spread(pv, ms), "",
                     cpu_versus(median(pv), median(nv), ms)))  # fmt: skip
    rows.append(("RSS idle (after start)", "", mb(nx.rss_idle), mb(same.rss_idle), "", ""))
    return [
        "",
        f"Reference relay: {r.nginx_version or 'nginx'}, the floor of the issue's reference "
        "table (+0.05 ms added p50, 0.8 x direct req/s, 0.02-0.04 ms CPU per request on its "
        "machine), as one process on the proxy's core with a keep-alive upstream pool and no "
        "buffering, in the same rounds:",
        "",
        "| figure | direct | nginx | proxy | nginx vs direct | proxy vs nginx |",
        "|---|---|---|---|---|---|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


# ---------------------------------------------------------------- the page


def harness_lines(r: Report) -> list[str]:
    lines = []
    for who, suite in (("direct", r.direct), ("floor", r.floor)):
        for label, name in (("non-stream", "many"), ("stream", "many_stream")):
            done = _done(_rounds(suite, name))
            if not done:
                continue
            share = median(p.result.cpu_share for p in done) or 0.0
            line = (
                f"- {who}, 64 clients, {label}: {num(_rps(done))} req/s; "
                f"load generator CPU share {share:.2f}"
            )
            fake = median(p.fake_cpu / p.result.completed for p in done)
            line += f"; fake upstream CPU {(fake or math.nan) * 1e6:.0f} us per request"
            lines.append(line)
    lines += _core_lines(r)
    pin = (
        f"proxy, floor, cross-dialect proxy and nginx on CPU {sorted(r.cores.proxy)}, fake "
        f"upstream + load generator on CPU {sorted(r.cores.harness)}"
        if r.cores.proxy and r.cores.harness
        else "not pinned (one CPU)"
    )
    lines.append(f"- pinning: {pin}")
    return lines


def _core_lines(r: Report) -> list[str]:
    """How busy the measured core and the harness cores were while each target ran (noise)."""
    lines = []
    suites = (("direct", r.direct), ("proxy", r.same), ("floor", r.floor),
              ("cross-dialect proxy", r.cross), ("nginx", r.nginx))  # fmt: skip
    for who, suite in suites:
        phases = [p for rounds in suite.phases.values() for p in rounds]
        parts = []
        core = [(p.core, p.server_cpu or 0.0) for p in phases if p.core is not None]
        if total := sum(c.total for c, _ in core):
            mine = sum(cpu for _, cpu in core)
            others = max(0.0, sum(c.busy for c, _ in core) - mine)
            parts.append(
                f"its core: {who} {mine / total:.0%}, other processes {others / total:.0%}, "
                f"interrupts {sum(c.irq for c, _ in core) / total:.0%}, "
                f"steal {sum(c.steal for c, _ in core) / total:.0%}"
            )
        harness = [p for p in phases if p.harness is not None]
        if total := sum(p.harness.total for p in harness if p.harness is not None):
            busy = sum(p.harness.busy + p.harness.irq for p in harness if p.harness is not None)
            own = sum(p.fake_cpu + p.result.cpu for p in harness)  # fake + load generator
            parts.append(f"harness cores {busy / total:.0%} busy ({own / total:.0%} the harness)")
        if parts:
            lines.append(f"- while the {who} was measured: " + "; ".join(parts))
    return lines


def render(r: Report) -> str:
    rows = latency_rows(r) + throughput_rows(r) + cpu_rows(r) + memory_rows(r)
    out = [
        f"### ccx-tray bench, {r.date} ({r.profile})",
        "",
        f"Machine: {r.machine}. Fake upstream on loopback answering at once; Anthropic "
        f"`/v1/messages`, about 200-byte requests; streams of {r.events_per_stream} SSE events.",
        f"Each figure is the median over {r.rounds} round(s), the targets alternating within "
        "each phase; CPU cells show [min-max] over the rounds. Added latency is paired: the "
        "median over rounds of (proxy - direct) within a round. The floor is a bytes-only "
        "trio relay (bench/floor.py): the runtime's price, which the proxy pays too.",
        "",
        "| figure | direct | floor | proxy | proxy vs direct | proxy vs floor | target | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    out += [f"| {w.figure} | {w.direct} | {w.floor} | {w.proxy} | {w.versus} | {w.vs_floor} "
            f"| {w.target} | {w.verdict} |" for w in rows]  # fmt: skip
    out += reference_lines(r)
    out += ["", "Harness headroom:", *harness_lines(r)]
    suites = (("proxy", r.same), ("floor relay", r.floor), ("cross-dialect proxy", r.cross),
              ("nginx reference", r.nginx))  # fmt: skip
    for label, suite in suites:
        if suite.error:
            out += [
                "",
                f"The {label}: not measured, or not to the end:",
                "```",
                suite.error.strip(),
                "```",
            ]
    return "\n".join(out) + "\n"
