"""`ccx-tray --headless` as a user runs it: a real process, a real config file, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from tests.fakes import FakeUpstream, json_reply, start_fake


async def read_until(stream: trio.abc.ReceiveStream, marker: bytes) -> bytes:
    seen = b""
    with trio.fail_after(20):
        while marker not in seen:
            chunk = await stream.receive_some()
            if not chunk:
                break
            seen += chunk
    return seen


async def test_headless_serves_logs_and_stops_on_sigterm(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fake = await start_fake(
        nursery,
        FakeUpstream(json_reply({"id": "m", "usage": {"input_tokens": 2, "output_tokens": 5}})),
    )
    log_file = tmp_path / "logs" / "requests.jsonl"
    config = tmp_path / "config.yaml"
    config.write_text(f"""
listen: {{host: 127.0.0.1, port: 0}}
logging: {{stdout: true, file: "{log_file}"}}
upstreams:
  - name: local
    provider: anthropic
    base_url: {fake.url}
    api_key: ${{TEST_UPSTREAM_KEY}}
""")
    env = {**os.environ, "TEST_UPSTREAM_KEY": "sk-test-headless-key-9876"}
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "ccx_tray", "--headless", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None
        banner = await read_until(proc.stderr, b"\n")
        url = banner.decode().strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=url) as client:
            resp = await client.post(
                "/v1/messages",
                json={"model": "claude-x", "max_tokens": 1, "messages": []},
            )
        assert resp.status_code == 200 and resp.headers["x-ccx-upstream"] == "local"
        assert fake.requests[0].header(b"x-api-key") == b"sk-test-headless-key-9876"
        out = await read_until(proc.stdout, b"\n")
        line = json.loads(out.splitlines()[0])
        assert line["upstream"] == "local" and line["output_tokens"] == 5
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            code = await proc.wait()
        assert code == 0
        logged = [json.loads(x) for x in log_file.read_text().splitlines()]
        assert [x["request_id"] for x in logged] == [resp.headers["x-ccx-request-id"]]
        assert "sk-test-headless" not in log_file.read_text() + out.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_headless_with_a_bad_config_exits_1_naming_the_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("upstreams:\n  - name: a\n    provider: antropic\n")
    result = await trio.run_process(
        [sys.executable, "-m", "ccx_tray", "--headless", "--config", str(config)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "config.yaml:3" in err and "provider" in err and "anthropic" in err


def test_open_file_limit_is_raised_toward_the_hard_limit() -> None:
    import resource

    from core.engine import raise_open_file_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        low = 256 if hard == resource.RLIM_INFINITY else min(256, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
        raise_open_file_limit(wanted=4096)
        raised = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        expected = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
        assert raised == expected
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_gc_tuning_freezes_startup_objects_and_raises_the_young_threshold() -> None:
    import gc

    from core.engine import YOUNG_GC_THRESHOLD, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0  # the objects alive now are out of the GC's sight
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
