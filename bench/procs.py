"""Child processes of a bench run: the fake upstream and the proxy, and what /proc says of them.

Owns: starting each child pinned to its core, waiting until it listens (bounded), reading
its CPU time and RSS from /proc, and stopping it (SIGTERM, then SIGKILL) in `finally`.

Rules:
- Everything listens on 127.0.0.1; ports come from the kernel.
- Every wait is bounded in time; a child that dies early is reported with its stderr tail.
- CPU is utime+stime of /proc/PID/stat (all threads of the process), in seconds.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True, kw_only=True)
class Cores:
    """Which CPUs the proxy and the harness (fake upstream + load generator) run on."""

    proxy: frozenset[int] | None
    harness: frozenset[int] | None

    @staticmethod
    def split() -> Cores:
        """Proxy on the first available core, everything else on the rest (if there are 2+)."""
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return Cores(proxy=None, harness=None)
        return Cores(proxy=frozenset(cpus[:1]), harness=frozenset(cpus[1:]))


def raise_fd_limit(want: int = 16384) -> int:
    """Lift the soft open-files limit (children inherit it): 1,000 streams need ~2,000 fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(soft, target)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreTimes:
    """Seconds some CPUs spent, from /proc/stat: to tell how much else ran on a measured core."""

    busy: float = 0.0  # user + nice + system (guest time is inside user)
    irq: float = 0.0  # irq + softirq: loopback packet work may land here, not in a process
    steal: float = 0.0  # the hypervisor ran another guest on them
    total: float = 0.0  # everything, idle included

    def __sub__(self, other: CoreTimes) -> CoreTimes:
        return CoreTimes(
            busy=self.busy - other.busy,
            irq=self.irq - other.irq,
            steal=self.steal - other.steal,
            total=self.total - other.total,
        )


def core_times(cpus: frozenset[int]) -> CoreTimes:
    busy = irq = steal = total = 0
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            name, _, rest = line.partition(" ")
            if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
                continue
            v = [int(x) for x in rest.split()[:8]]  # user nice system idle iowait irq softirq steal
            busy += v[0] + v[1] + v[2]
            irq += v[5] + v[6]
            steal += v[7]
            total += sum(v)
    return CoreTimes(busy=busy / _TICK, irq=irq / _TICK, steal=steal / _TICK, total=total / _TICK)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


@dataclass(slots=True)
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> float:
        return rss_mb(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_tail(self, lines: int = 15) -> str:
        try:
            text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class StartError(RuntimeError):
    pass


def _pin(cores: frozenset[int] | None) -> None:
    if cores:
        os.sched_setaffinity(0, cores)


def _spawn(name: str, argv: list[str], workdir: Path, cores: frozenset[int] | None,
           *, stdout: int) -> tuple[subprocess.Popen[bytes], Path]:  # fmt: skip
    stderr_path = workdir / f"{name}.stderr"
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=err,
            preexec_fn=(lambda: _pin(cores)) if cores else None,
        )
    return proc, stderr_path


def _ready_port(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """The P of the child's first stdout line `READY port=P`, or None by the deadline."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()  # raw reads: a buffered read would hide bytes from select()
    deadline = time.monotonic() + timeout
    line = b""
    while b"\n" not in line and len(line) < 256:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            data = os.read(fd, 256)
            if not data:
                return None  # the child closed stdout: it exited
            line += data
    first = line.split(b"\n", 1)[0]
    if not first.startswith(b"READY port="):
        return None
    return int(first.split(b"=", 1)[1])


def _start_ready(name: str, argv: list[str], workdir: Path, cores: frozenset[int] | None,
                 timeout: float) -> Child:  # fmt: skip
    """Start a child that prints `READY port=P` once it listens; wait for it (bounded)."""
    proc, err = _spawn(name.replace(" ", "_"), argv, workdir, cores, stdout=subprocess.PIPE)
    child = Child(name, proc, 0, err)
    port = _ready_port(proc, timeout)
    if port is None:
        child.stop()
        raise StartError(f"the {name} did not start:\n{child.stderr_tail()}")
    child.port = port
    return child


def start_fake(workdir: Path, cores: frozenset[int] | None, *extra: str) -> Child:
    """Start `python -m bench.fake_upstream --port 0`, wait for its READY line (10 s)."""
    argv = [sys.executable, "-m", "bench.fake_upstream", "--port", "0", *extra]
    return _start_ready("fake upstream", argv, workdir, cores, timeout=10.0)


def start_floor(workdir: Path, cores: frozenset[int] | None, upstream_port: int) -> Child:
    """Start the floor relay (`python -m bench.floor`) in front of `upstream_port` (10 s)."""
    argv = [sys.executable, "-m", "bench.floor", "--port", "0"]
    argv += ["--upstream-port", str(upstream_port)]
    return _start_ready("floor relay", argv, workdir, cores, timeout=10.0)


def proxy_config(port: int, upstreams: list[tuple[str, str, str]]) -> str:
    """YAML for the proxy: (name, provider, base_url) upstreams, no log file, no stdout."""
    lines = [
        f"listen: {{host: {HOST}, port: {port}}}",
        'logging: {file: "", stdout: false}',
        "upstreams:",
    ]
    for name, provider, base_url in upstreams:
        lines += [
            f"  - name: {name}",
            f"    provider: {provider}",
            f"    base_url: {base_url}",
            "    api_key: test-key-123456789",
            # Explicit patterns: an upstream of another dialect than the client's serves
            # only models it is told about; the fake reads its knobs from the model name.
            '    models: ["*"]',
        ]
    lines.append("routing: {strategy: round_robin}")
    return "\n".join(lines) + "\n"


def start_proxy(workdir: Path, cores: frozenset[int] | None, config_text: str, port: int,
                *, name: str = "proxy", timeout: float = 20.0) -> Child:  # fmt: skip
    """Start `python -m ccx_tray --headless --config PATH`; wait until it accepts TCP."""
    # A folder of its own: the proxy watches its config's folder, so nothing else may churn there.
    config = workdir / name / "config.yaml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(config_text, encoding="utf-8")
    argv = [sys.executable, "-m", "ccx_tray", "--headless", "--config", str(config)]
    return start_listening(name, argv, workdir, cores, port, timeout=timeout)


def start_listening(name: str, argv: list[str], workdir: Path, cores: frozenset[int] | None,
                    port: int, *, timeout: float) -> Child:  # fmt: skip
    """Start a child that prints nothing when ready; wait until it accepts TCP on `port`."""
    try:
        proc, err = _spawn(name, argv, workdir, cores, stdout=subprocess.DEVNULL)
    except OSError as exc:  # no such binary, not executable
        raise StartError(f"the {name} could not start: {exc}") from exc
    child = Child(name, proc, port, err)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise StartError(f"the {name} exited with {proc.returncode}:\n{child.stderr_tail()}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return child
        time.sleep(0.05)  # polling a child's readiness, bounded by the deadline
    child.stop()
    raise StartError(f"the {name} did not listen on {HOST}:{port} within {timeout:.0f} s")


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ccx-bench-") as d:
        yield Path(d)
