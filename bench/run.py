"""One command: direct vs the floor relay vs the proxy, in the same invocation, as a table.

Owns: `python -m bench.run [--quick] [--rounds N]`: start the fake upstream, the proxy (a
generated config in a temp dir), the floor relay (bench/floor.py), the cross-dialect
proxy and, when installed, nginx as the issue's reference relay (bench/nginx.py); run
every measured phase against each of them, N rounds; then the proxy-only phases (soak,
slow streams); print the markdown table (also written to bench/results/<date>.md).

Rules:
- The proxy, the floor, the cross-dialect proxy and nginx are pinned to the same core (each
  idle while another is measured); the fake upstream + load generator to the others, so
  "on one core" holds and the harness never steals the measured process's CPU. CPU and
  RSS come from /proc.
- Rounds: each repeated phase runs once per target per round, the targets of a phase one
  after another and in reverse order on odd rounds, so drift (a noisy neighbour, CPU
  frequency) hits every target alike; the report takes the median over rounds.
- Every phase is bounded in requests and seconds; children are stopped in `finally`.
- A child that cannot start is reported with its reason; the other targets still run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import trio

from bench import procs
from bench.loadgen import LoadResult, LoadSpec, run_load
from bench.nginx import find_nginx, start_nginx, version
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
    rounds: int  # each repeated phase runs this many times per target; the median counts
    single: int  # requests at 1 client, for each of non-stream and stream
    many: int  # requests at 64 clients, for each of non-stream and stream
    open_streams: int  # held open together (RSS), an event every 100 ms
    open_events: int
    soak: int  # non-stream requests for the RSS-flatness soak; 0 skips it
    slow_streams: int  # concurrent slow streams that must all complete; 0 skips it
    slow_events: int
    cap: float  # seconds, the hard limit of any one phase


QUICK = Profile(
    name="quick", rounds=3, single=500, many=6000, open_streams=500, open_events=20,
    soak=0, slow_streams=0, slow_events=0, cap=30.0,
)  # fmt: skip
FULL = Profile(
    name="full", rounds=3, single=3000, many=30000, open_streams=500, open_events=30,
    soak=100_000, slow_streams=1000, slow_events=30, cap=300.0,
)  # fmt: skip


class Target(StrEnum):
    DIRECT = "direct"  # load generator -> fake upstream
    PROXY = "proxy"  # load generator -> proxy -> fake upstream (Anthropic both sides)
    FLOOR = "floor"  # load generator -> bench/floor.py (bytes only) -> fake upstream
    CROSS = "cross"  # Anthropic client -> proxy -> OpenAI upstream (the proxy translates)
    NGINX = "nginx"  # load generator -> nginx (the floor, if installed) -> fake upstream


D, P, F, C, N = Target.DIRECT, Target.PROXY, Target.FLOOR, Target.CROSS, Target.NGINX
# The repeated phases, in the order a round runs them, and which targets run each (in
# round-0 order; odd rounds reverse it).
ROUND_PHASES: tuple[tuple[str, tuple[Target, ...]], ...] = (
    ("single", (D, P, F, N)),
    ("single_stream", (D, P, F, N)),
    ("many", (D, P, F, N)),
    ("many_stream", (D, P, F, C, N)),
    ("open", (P, F)),
)


@dataclass(slots=True, kw_only=True)
class Phase:
    """One load run and what the children spent during it."""

    result: LoadResult
    server_cpu: float | None = None  # seconds, the proxy's or the floor's; None when direct
    fake_cpu: float = 0.0
    rss_before: float | None = None
    rss_peak: float | None = None
    rss_after: float | None = None
    core: procs.CoreTimes | None = None  # the measured process's core(s) over the phase
    harness: procs.CoreTimes | None = None  # the fake upstream's and load generator's

    def cpu_per_request(self) -> float | None:
        if self.server_cpu is None or not self.result.completed:
            return None
        return self.server_cpu / self.result.completed


@dataclass(slots=True, kw_only=True)
class Suite:
    """The phases run against one target, each a list of rounds."""

    phases: dict[str, list[Phase]] = field(default_factory=dict)
    rss_idle: float | None = None
    rss_warm: float | None = None
    error: str | None = None

    def add(self, name: str, phase: Phase) -> None:
        self.phases.setdefault(name, []).append(phase)


async def _sample_rss(pid: int, phase: Phase) -> None:
    while True:  # cancelled by the caller when the load ends
        phase.rss_peak = max(phase.rss_peak or 0.0, procs.rss_mb(pid))
        await trio.sleep(0.05)


async def _load(spec: LoadSpec, phase: Phase, server: procs.Child | None) -> None:
    async with trio.open_nursery() as nursery:
        if server is not None:
            nursery.start_soon(_sample_rss, server.pid, phase)
        phase.result = await run_load(spec)
        nursery.cancel_scope.cancel()


def measure(spec: LoadSpec, fake: procs.Child, server: procs.Child | None,
            cores: procs.Cores | None = None) -> Phase:  # fmt: skip
    phase = Phase(result=LoadResult())
    core = cores.proxy if cores and server is not None else None
    harness = cores.harness if cores else None
    core0 = procs.core_times(core) if core else None
    harness0 = procs.core_times(harness) if harness else None
    fake0 = fake.cpu()
    server0 = server.cpu() if server else 0.0
    if server is not None:
        phase.rss_before = server.rss()
    trio.run(_load, spec, phase, server)
    phase.fake_cpu = fake.cpu() - fake0
    if server is not None:
        phase.server_cpu = server.cpu() - server0
        phase.rss_after = server.rss()
    if core and core0 is not None:
        phase.core = procs.core_times(core) - core0
    if harness and harness0 is not None:
        phase.harness = procs.core_times(harness) - harness0
    return phase


class Runner:
    """Builds the load specs for one target (a port) and runs the phases against it."""

    def __init__(self, name: str, profile: Profile, fake: procs.Child,
                 server: procs.Child | None, cores: procs.Cores | None):  # fmt: skip
        self.name = name
        self.cores = cores
        self.p = profile
        self.fake = fake
        self.server = server
        self.port = server.port if server else fake.port

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
        print(f"  {self.name:>6}: {label} ...", end="", flush=True, file=sys.stderr)
        phase = measure(spec, self.fake, self.server, self.cores)
        r = phase.result
        cpu = phase.cpu_per_request()
        extra = f", {cpu * 1000:.3f} ms CPU/req" if cpu is not None else ""
        print(f" {r.completed} ok, {r.failed} failed, {r.rps:,.0f} req/s{extra}", file=sys.stderr)
        return phase

    def warm_up(self) -> None:
        self.run("warm-up", self.spec(8, 400, stream=False))
        self.run("warm-up stream", self.spec(8, 200, stream=True))

    def slow_spec(self, n: int, events: int) -> LoadSpec:
        model = f"claude-bench~e{events}~d{SLOW_DELAY_MS}"
        return self.spec(n, n, stream=True, model=model)

    def phase(self, name: str) -> Phase:
        """Run one of ROUND_PHASES."""
        p = self.p
        if name == "single":
            return self.run("1 client", self.spec(1, p.single, stream=False))
        if name == "single_stream":
            return self.run("1 client stream", self.spec(1, p.single, stream=True))
        if name == "many":
            return self.run("64 clients", self.spec(MANY, p.many, stream=False))
        if name == "many_stream":
            return self.run("64 clients stream", self.spec(MANY, p.many, stream=True))
        if name == "open":
            n = p.open_streams
            return self.run(f"{n} open streams", self.slow_spec(n, p.open_events))
        raise ValueError(f"unknown phase {name!r}")


@dataclass(slots=True, kw_only=True)
class Bench:
    """The targets that started and their suites (a target that did not start has only
    its suite, with the error)."""

    profile: Profile
    fake: procs.Child
    cores: procs.Cores  # the proxy's core (also the floor's and the cross proxy's), the rest
    runners: dict[Target, Runner] = field(default_factory=dict)
    suites: dict[Target, Suite] = field(default_factory=lambda: {t: Suite() for t in Target})

    def start(self, target: Target, start: Callable[[], procs.Child] | None,
              stack: contextlib.ExitStack) -> None:  # fmt: skip
        """Register `target`; `start` starts its child (None: the fake itself, direct)."""
        server = None
        if start is not None:
            try:
                server = start()
            except procs.StartError as exc:
                self.suites[target].error = str(exc)
                return
            stack.callback(server.stop)
            self.suites[target].rss_idle = server.rss()
        self.runners[target] = Runner(target.value, self.profile, self.fake, server, self.cores)

    def rounds(self) -> None:
        for target, runner in self.runners.items():
            runner.warm_up()
            if runner.server is not None:
                self.suites[target].rss_warm = runner.server.rss()
        n = self.profile.rounds
        for i in range(n):
            print(f"round {i + 1}/{n}", file=sys.stderr)
            for name, targets in ROUND_PHASES:
                order = targets if i % 2 == 0 else tuple(reversed(targets))
                for target in order:
                    if target in self.runners:
                        self.suites[target].add(name, self.runners[target].phase(name))

    def proxy_only(self) -> None:
        runner = self.runners.get(Target.PROXY)
        if runner is None:
            return
        p, suite = self.profile, self.suites[Target.PROXY]
        print("proxy only", file=sys.stderr)
        if p.soak:
            suite.add(
                "soak", runner.run(f"soak {p.soak:,}", runner.spec(MANY, p.soak, stream=False))
            )
        if p.slow_streams:
            n = p.slow_streams
            suite.add("slow", runner.run(f"{n} slow streams", runner.slow_spec(n, p.slow_events)))

    def check_alive(self) -> None:
        for target, runner in self.runners.items():
            if runner.server is not None and not runner.server.alive():
                tail = runner.server.stderr_tail()
                self.suites[target].error = f"{runner.server.name} died during the run:\n{tail}"


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


def _targets(b: Bench, wd: Path, cores: procs.Cores, stack: contextlib.ExitStack,
             nginx: str | None) -> None:  # fmt: skip
    """Start the proxy, the floor, the cross-dialect proxy and nginx, all pinned like the proxy."""
    fake = f"http://{procs.HOST}:{b.fake.port}"
    pin = cores.proxy

    def proxy(name: str, provider: str, base_url: str) -> Callable[[], procs.Child]:
        port = procs.free_port()
        config = procs.proxy_config(port, [(f"fake-{provider}", provider, base_url)])
        return lambda: procs.start_proxy(wd, pin, config, port, name=name)

    b.start(Target.DIRECT, None, stack)
    b.start(Target.PROXY, proxy("proxy", "anthropic", fake), stack)
    b.start(Target.FLOOR, lambda: procs.start_floor(wd, pin, b.fake.port), stack)
    b.start(Target.CROSS, proxy("proxy-cross", "openai", f"{fake}/v1"), stack)
    b.start(Target.NGINX, lambda: start_nginx(wd, pin, b.fake.port, nginx), stack)


def bench(profile: Profile) -> str:
    """Run every phase of `profile` and return the markdown report."""
    cores = procs.Cores.split()
    procs.raise_fd_limit()
    if cores.harness:
        os.sched_setaffinity(0, cores.harness)  # the load generator shares the fake's cores
    with procs.workdir() as wd, contextlib.ExitStack() as stack:
        fake = procs.start_fake(wd, cores.harness)
        stack.callback(fake.stop)
        b = Bench(profile=profile, fake=fake, cores=cores)
        nginx = find_nginx()
        _targets(b, wd, cores, stack, nginx)
        b.rounds()
        b.proxy_only()
        b.check_alive()
    report = Report(
        date=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        machine=machine(),
        profile=profile.name,
        rounds=profile.rounds,
        cores=cores,
        events_per_stream=stream_script(Kind.ANTHROPIC, EVENTS).event_count,
        open_events=stream_script(Kind.ANTHROPIC, max(1, profile.open_events)).event_count,
        open_deltas=profile.open_events,
        slow_deltas=profile.slow_events,
        slow_delay=SLOW_DELAY_MS / 1000.0,
        direct=b.suites[Target.DIRECT],
        same=b.suites[Target.PROXY],
        floor=b.suites[Target.FLOOR],
        cross=b.suites[Target.CROSS],
        nginx=b.suites[Target.NGINX],
        nginx_version=version(nginx) if nginx else "",
    )
    return render(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter phases, no soak")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="rounds of each repeated phase (default 3); the median counts",
    )
    parser.add_argument("--out", type=Path, default=procs.REPO / "bench" / "results")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    if args.rounds is not None:
        profile = dataclasses.replace(profile, rounds=max(1, min(args.rounds, 20)))
    text = bench(profile)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{dt.date.today().isoformat()}{'-quick' if args.quick else ''}.md"
    path.write_text(text, encoding="utf-8")
    print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
