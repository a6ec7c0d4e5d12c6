"""Count trio scheduler passes (io waits) and task steps per proxied request, 1 client.

Run by hand: `python bench/scheduler_passes.py [--stream]`. Each pass costs an epoll call
and a trip round trio's run loop; the added latency at one client is mostly CPU on the
path plus these passes. Today: 3.0 passes per request, 2 of them on the latency path as
for the bytes-only floor (a request reaches the handler in the pass its bytes arrived in;
the third pass is the connection's other task taking over the reading, while the upstream
works).
"""

import subprocess
import sys
from functools import partial

import trio

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from collections import Counter

from core.accesslog import AccessLog
from core.config_parse import parse_config
from core.engine import Engine

ROOT = str(__import__("pathlib").Path(__file__).resolve().parent.parent)


class Count(trio.abc.Instrument):
    def __init__(self):
        self.steps = Counter()
        self.batches = 0
        self.on = False

    def before_run(self):
        pass

    def before_io_wait(self, timeout):
        if self.on:
            self.batches += 1

    def before_task_step(self, task):
        if self.on:
            self.steps[task.name.split(".")[-1][:60]] += 1


async def main():
    fake = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_upstream", "--port", "0"],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    port = int(fake.stdout.readline().decode().split("port=")[1].split()[0])
    cfg = parse_config(
        f"""
listen: {{host: 127.0.0.1, port: 0}}
logging: {{stdout: false, file: ""}}
upstreams:
  - name: f
    provider: anthropic
    base_url: http://127.0.0.1:{port}
    api_key: test-key-123456789
""",
        {},
    )
    engine = Engine(cfg, access_log=AccessLog())
    inst = Count()
    trio.lowlevel.add_instrument(inst)
    async with trio.open_nursery() as n:
        info = await n.start(partial(engine.run, port=0))
        args = [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--port",
            str(info.port),
            "--clients",
            "1",
            "--requests",
            "2000",
            *sys.argv[1:],
        ]
        inst.on = True
        await trio.run_process(args, capture_stdout=True, cwd=ROOT)
        inst.on = False
        print("io waits per request", inst.batches / 2000)
        for k, v in inst.steps.most_common(8):
            print(f"{v / 2000:6.2f}", k)
        n.cancel_scope.cancel()
    fake.kill()


trio.run(main)
