"""One command: direct vs through the proxy, in the same invocation, as a table.

Owns: `python -m bench.run [--quick]`: start the fake upstream, measure the direct path,
start the proxy (a generated config in a temp dir), measure the same phases through it,
then the proxy-only phases (open streams, soak, slow streams, cross-dialect), and print
the markdown table (also written to bench/results/<date>.md).

Rules:
- The proxy is pinned to one core and the fake upstream + load generator to the others,
  so "on one core" holds for the proxy; CPU and RSS come from /proc.
- Every phase is bounded in requests and seconds; children are stopped in `finally`.
- If the proxy cannot start, the direct figures are still reported, with the reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

import trio

from bench import procs
from bench.loadgen import LoadResult, LoadSpec, run_load
from bench.payloads import Kind, build_request, stream_script
from bench.report import Report, render

MANY = 64
EVENTS = 50  # deltas per stream in the throughput phases (the fake's default)
SLOW_DELAY_MS = 100
EXPECT_JSON = b"output_tokens"
EXPECT_STREAM = b"message_stop"


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    name: str
    single: int  # requests at 1 client, for each of non-stream and stream
    many: int  # requests at 64 clients, for each of non-stream and stream
    open_streams: int  # held open together (RSS), an event every 100 ms
    open_events: int
    soak: int  # non-stream requests for the RSS-flatness soak; 0 skips it
    slow_streams: int  # concurrent slow streams that must all complete; 0 skips it
    slow_events: int
    cap: float  # seconds, the hard limit of any one phase


QUICK = Profile(
    name="quick", single=500, many=6000, open_streams=500, open_events=20,
    soak=0, slow_streams=0, slow_events=0, cap=30.0,
)  # fmt: skip
FULL = Profile(
    name="full", single=3000, many=30000, open_streams=500, open_events=30,
    soak=100_000, slow_streams=1000, slow_events=30, cap=300.0,
)  # fmt: skip


@dataclass(slots=True, kw_only=True)
class Phase:
    """One load run and what the children spent during it."""

    result: LoadResult
    proxy_cpu: float | None = None  # seconds
    fake_cpu: float = 0.0
    rss_before: float | None = None
    rss_peak: float | None = None
    rss_after: float | None = None

    def proxy_cpu_per_request(self) -> float | None:
        if self.proxy_cpu is None or not self.result.completed:
            return None
        return self.proxy_cpu / self.result.completed


@dataclass(slots=True, kw_only=True)
class Suite:
    """The phases run against one target (the fake directly, or the proxy)."""

    phases: dict[str, Phase] = field(default_factory=dict)
    rss_idle: float | None = None
    rss_warm: float | None = None
    error: str | None = None


async def _sample_rss(pid: int, phase: Phase) -> None:
    while True:  # cancelled by the caller when the load ends
        phase.rss_peak = max(phase.rss_peak or 0.0, procs.rss_mb(pid))
        await trio.sleep(0.05)


async def _load(spec: LoadSpec, phase: Phase, proxy: procs.Child | None) -> None:
    async with trio.open_nursery() as nursery:
        if proxy is not None:
            nursery.start_soon(_sample_rss, proxy.pid, phase)
        phase.result = await run_load(spec)
        nursery.cancel_scope.cancel()


def measure(spec: LoadSpec, fake: procs.Child, proxy: procs.Child | None) -> Phase:
    phase = Phase(result=LoadResult())
    fake0 = fake.cpu()
    proxy0 = proxy.cpu() if proxy else 0.0
    if proxy is not None:
        phase.rss_before = proxy.rss()
    trio.run(_load, spec, phase, proxy)
    phase.fake_cpu = fake.cpu() - fake0
    if proxy is not None:
        phase.proxy_cpu = proxy.cpu() - proxy0
        phase.rss_after = proxy.rss()
    return phase


class Runner:
    """Builds the load specs for one target port and runs the phases."""

    def __init__(self, profile: Profile, fake: procs.Child, proxy: procs.Child | None):
        self.p = profile
        self.fake = fake
        self.proxy = proxy
        self.port = proxy.port if proxy else fake.port

    def spec(self, clients: int, requests: int, *, stream: bool, model: str | None = None,
             kind: Kind = Kind.ANTHROPIC) -> LoadSpec:  # fmt: skip
        request = build_request(kind, host=procs.HOST, port=self.port, model=model, stream=stream)
        return LoadSpec(
            port=self.port,
            request=request,
            clients=clients,
            requests=requests,
            duration=self.p.cap,
            stream=stream,
            expect=EXPECT_STREAM if stream else EXPECT_JSON,
        )

    def run(self, label: str, spec: LoadSpec) -> Phase:
        print(f"  {label} ...", end="", flush=True, file=sys.stderr)
        phase = measure(spec, self.fake, self.proxy)
        r = phase.result
        print(f" {r.completed} ok, {r.failed} failed, {r.rps:,.0f} req/s", file=sys.stderr)
        return phase

    def warm_up(self) -> None:
        self.run("warm-up", self.spec(8, 400, stream=False))
        self.run("warm-up stream", self.spec(8, 200, stream=True))

    def core(self, suite: Suite) -> None:
        """The phases measured both directly and through the proxy."""
        self.warm_up()
        ph = suite.phases
        ph["single"] = self.run("1 client", self.spec(1, self.p.single, stream=False))
        ph["single_stream"] = self.run("1 client stream", self.spec(1, self.p.single, stream=True))
        ph["many"] = self.run("64 clients", self.spec(MANY, self.p.many, stream=False))
        ph["many_stream"] = self.run("64 clients stream", self.spec(MANY, self.p.many, stream=True))

    def slow(self, n: int, events: int, label: str) -> Phase:
        model = f"claude-bench~e{events}~d{SLOW_DELAY_MS}"
        return self.run(label, self.spec(n, n, stream=True, model=model))


def direct_suite(profile: Profile, fake: procs.Child) -> Suite:
    print("direct (load generator -> fake upstream)", file=sys.stderr)
    suite = Suite()
    Runner(profile, fake, None).core(suite)
    return suite


def proxy_suite(profile: Profile, fake: procs.Child, wd: Path, cores: procs.Cores) -> Suite:
    print("through the proxy (load generator -> proxy -> fake upstream)", file=sys.stderr)
    suite = Suite()
    port = procs.free_port()
    upstream = [("fake-anthropic", "anthropic", f"http://{procs.HOST}:{fake.port}")]
    try:
        proxy = procs.start_proxy(wd, cores.proxy, procs.proxy_config(port, upstream), port)
    except procs.StartError as exc:
        suite.error = str(exc)
        return suite
    try:
        suite.rss_idle = proxy.rss()
        runner = Runner(profile, fake, proxy)
        runner.core(suite)
        suite.rss_warm = proxy.rss()
        n = profile.open_streams
        suite.phases["open"] = runner.slow(n, profile.open_events, f"{n} open streams")
        if profile.soak:
            soak = runner.spec(MANY, profile.soak, stream=False)
            suite.phases["soak"] = runner.run(f"soak {profile.soak:,}", soak)
        if profile.slow_streams:
            n = profile.slow_streams
            suite.phases["slow"] = runner.slow(n, profile.slow_events, f"{n} slow streams")
        if not proxy.alive():
            suite.error = f"the proxy died during the run:\n{proxy.stderr_tail()}"
    finally:
        proxy.stop()
    return suite


def cross_suite(profile: Profile, fake: procs.Child, wd: Path, cores: procs.Cores) -> Suite:
    print("cross-dialect (Anthropic client -> proxy -> OpenAI upstream)", file=sys.stderr)
    suite = Suite()
    port = procs.free_port()
    upstream = [("fake-openai", "openai", f"http://{procs.HOST}:{fake.port}/v1")]
    try:
        config = procs.proxy_config(port, upstream)
        proxy = procs.start_proxy(wd, cores.proxy, config, port, name="proxy-cross")
    except procs.StartError as exc:
        suite.error = str(exc)
        return suite
    try:
        runner = Runner(profile, fake, proxy)
        runner.warm_up()
        spec = runner.spec(MANY, profile.many, stream=True)
        suite.phases["many_stream"] = runner.run("64 clients stream", spec)
    finally:
        proxy.stop()
    return suite


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    python = platform.python_version()
    return f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}, Python {python}"


def bench(profile: Profile) -> str:
    """Run every phase of `profile` and return the markdown report."""
    cores = procs.Cores.split()
    procs.raise_fd_limit()
    if cores.harness:
        os.sched_setaffinity(0, cores.harness)  # the load generator shares the fake's cores
    with procs.workdir() as wd:
        fake = procs.start_fake(wd, cores.harness)
        try:
            direct = direct_suite(profile, fake)
            same = proxy_suite(profile, fake, wd, cores)
            cross = cross_suite(profile, fake, wd, cores) if same.error is None else Suite()
        finally:
            fake.stop()
    report = Report(
        date=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        machine=machine(),
        profile=profile.name,
        cores=cores,
        events_per_stream=stream_script(Kind.ANTHROPIC, EVENTS).event_count,
        open_events=stream_script(Kind.ANTHROPIC, max(1, profile.open_events)).event_count,
        open_deltas=profile.open_events,
        slow_deltas=profile.slow_events,
        slow_delay=SLOW_DELAY_MS / 1000.0,
        direct=direct,
        same=same,
        cross=cross,
    )
    return render(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter phases, no soak")
    parser.add_argument("--out", type=Path, default=procs.REPO / "bench" / "results")
    args = parser.parse_args(argv)
    text = bench(QUICK if args.quick else FULL)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{dt.date.today().isoformat()}{'-quick' if args.quick else ''}.md"
    path.write_text(text, encoding="utf-8")
    print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
