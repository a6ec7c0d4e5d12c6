"""Micro-benchmark: CPU cost per upstream SSE event of cross-dialect stream translation.

Run from the repository root:

    python bench/stream_translate_bench.py                 # all 12 pairs, 50-delta streams
    python bench/stream_translate_bench.py --before-root /tmp/old   # before/after, one run
    python bench/stream_translate_bench.py --profile openai:anthropic

`--before-root` measures another checkout's `core` in a child process in the same
invocation (`git archive REV core | tar -x -C /tmp/old`) and prints both columns.

What is measured: for every (upstream, client) pair, a whole stream through a fresh
StreamTranslator (construction included, as the proxy pays it per request), fed one
network chunk per SSE event as a paced upstream delivers it. Workloads:
- `text`: the fake upstream's answer (bench/payloads.py, 50 text deltas, usage), the
  stream the proxy benchmark relays;
- `tools`: the golden fixture (tests/data/translate_streams: reasoning, text, two
  streamed tool calls), so the rarer paths do not regress unseen.

The floor is `split`: only splitting the same chunks into SSE events with core.sse (what a
same-dialect relay's preflight pays at most). `x split` is the pair's cost over that floor.

Budget: a same-dialect relay costs about 15 us of proxy CPU per event end to end (issue 3:
0.87 ms for a 56-event stream); cross-dialect must stay within 2x of it, so translation
itself must stay well under 15 us per event.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pathlib
import pstats
import subprocess
import sys
import time
from collections.abc import Callable

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "data" / "translate_streams"
DIALECTS = ("anthropic", "openai", "openai-responses", "gemini")
PAIRS = [(s, d) for s in DIALECTS for d in DIALECTS if s != d]

Run = Callable[[list[bytes]], None]


def split_events(raw: bytes) -> list[bytes]:
    """The stream as one chunk per SSE event (LF or CRLF blank lines)."""
    sep = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
    return [part + sep for part in raw.split(sep) if part.strip()]


def workload(name: str, src: str, events: int) -> list[bytes]:
    if name == "tools":
        return split_events((FIXTURES / f"upstream_{src}.sse").read_bytes())
    from bench.payloads import Kind, stream_script

    return split_events(stream_script(Kind(src), events).body())


def translate_run(src: str, dst: str) -> Run:
    from core.dialects import Dialect
    from core.translate.streams import StreamTranslator

    s, d = Dialect(src), Dialect(dst)

    def run(chunks: list[bytes]) -> None:
        t = StreamTranslator(src=s, dst=d, client_model="m", created=1)
        for c in chunks:
            t.feed(c)
        t.close()

    return run


def split_run(chunks: list[bytes]) -> None:
    from core.sse import SSEParser

    p = SSEParser()
    for c in chunks:
        p.feed(c)
    p.close()


def per_event_us(run: Run, chunks: list[bytes], *, streams: int, rounds: int) -> float:
    """Best of `rounds` of `streams` whole streams, in microseconds per upstream event."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(streams):
            run(chunks)
        best = min(best, time.process_time() - start)
    return best / (streams * len(chunks)) * 1e6


def measure(work: str, events: int, streams: int, rounds: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for src in DIALECTS:
        chunks = workload(work, src, events)
        out[f"split {src}"] = per_event_us(split_run, chunks, streams=streams, rounds=rounds)
        for s, d in PAIRS:
            if s == src:
                run = translate_run(s, d)
                out[f"{s}->{d}"] = per_event_us(run, chunks, streams=streams, rounds=rounds)
    return out


def measure_elsewhere(root: str, args: argparse.Namespace) -> dict[str, float]:
    """The same measurement with another checkout's core, in a child process."""
    cmd = [sys.executable, __file__, "--json", "--ours-root", root]
    cmd += ["--work", args.work, "--events", str(args.events)]
    cmd += ["--streams", str(args.streams), "--rounds", str(args.rounds)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def table(now: dict[str, float], before: dict[str, float] | None) -> str:
    head = "| pair | us/event | x split |"
    rule = "|---|---:|---:|"
    if before is not None:
        head += " before us/event | before x split | after/before |"
        rule += "---:|---:|---:|"
    rows = [head, rule]
    for s, d in PAIRS:
        key, floor = f"{s}->{d}", f"split {s}"
        row = f"| {key} | {now[key]:.2f} | {now[key] / now[floor]:.2f} |"
        if before is not None:
            b = before[key]
            row += f" {b:.2f} | {b / before[floor]:.2f} | {now[key] / b:.2f} |"
        rows.append(row)
    for src in DIALECTS:
        floor = f"split {src}"
        row = f"| split ({src} bytes) | {now[floor]:.2f} | 1.00 |"
        if before is not None:
            row += f" {before[floor]:.2f} | 1.00 | {now[floor] / before[floor]:.2f} |"
        rows.append(row)
    return "\n".join(rows)


def profile(pair: str, work: str, events: int, streams: int) -> None:
    src, dst = pair.split(":")
    chunks, run = workload(work, src, events), translate_run(src, dst)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(streams):
        run(chunks)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", choices=("text", "tools"), default="text")
    parser.add_argument("--events", type=int, default=50, help="text deltas per stream")
    parser.add_argument("--streams", type=int, default=200, help="streams per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ours-root", help="import core from this checkout")
    parser.add_argument("--before-root", help="also measure this checkout's core")
    parser.add_argument("--profile", metavar="SRC:DST", help="cProfile one pair instead")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, args.ours_root or str(ROOT))
    if args.ours_root:
        sys.path.insert(1, str(ROOT))  # bench.payloads still comes from here
    if args.profile:
        profile(args.profile, args.work, args.events, args.streams)
        return
    before = measure_elsewhere(args.before_root, args) if args.before_root else None
    now = measure(args.work, args.events, args.streams, args.rounds)
    if args.json:
        print(json.dumps(now))
        return
    what = f"{args.events} text deltas" if args.work == "text" else "the golden fixtures"
    print(f"workload {args.work} ({what}), one chunk per event, best of {args.rounds} rounds")
    print(table(now, before))


if __name__ == "__main__":
    main()
