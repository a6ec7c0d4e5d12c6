"""Hot reload: a good save swaps the config and keeps state; a bad one keeps the old."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import trio

from core.config_parse import load_config
from core.reload import watch_config
from tests.conftest import running_proxy
from tests.fakes import FakeUpstream, json_reply, start_fake

MSG = {"model": "claude-x", "max_tokens": 5, "messages": []}


def config_text(url: str, name: str, extra: str = "") -> str:
    return f"""
logging: {{stdout: false, file: ""}}
upstreams:
  - name: {name}
    provider: anthropic
    base_url: {url}
    api_key: key-{name}-00000000000
{extra}"""


async def test_save_swaps_config_and_bad_edit_keeps_the_old(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    a = await start_fake(nursery, FakeUpstream(json_reply({"id": "a"})))
    b = await start_fake(nursery, FakeUpstream(json_reply({"id": "b"})))
    path = tmp_path / "config.yaml"
    path.write_text(config_text(a.url, "first"))
    async with running_proxy(load_config(path, {})) as (engine, client):
        changed = trio.Event()

        def on_change() -> None:
            changed.set()

        engine.on_config_change.append(on_change)
        await nursery.start(partial(watch_config, engine, path, step_ms=10))
        assert (await client.post("/v1/messages", json=MSG)).headers["x-ccx-upstream"] == "first"

        # A rename-save, as editors do: write a temp file, then move it over.
        tmp = tmp_path / ".config.yaml.swp"
        tmp.write_text(config_text(b.url, "second"))
        tmp.replace(path)
        with trio.fail_after(10):
            await changed.wait()
        assert (await client.post("/v1/messages", json=MSG)).headers["x-ccx-upstream"] == "second"
        assert engine.config_error is None

        changed = trio.Event()
        path.write_text(config_text(b.url, "second", "    rate_limit: 100 per fortnight\n"))
        with trio.fail_after(10):
            await changed.wait()
        assert engine.config_error is not None
        assert "config.yaml:8" in engine.config_error and "rate_limit" in engine.config_error
        assert (await client.post("/v1/messages", json=MSG)).headers["x-ccx-upstream"] == "second"
        snap = engine.snapshot()
        assert snap.config_error == engine.config_error
        assert [e.kind for e in snap.events][-2:] == ["config_reloaded", "config_error"]


async def test_reload_keeps_health_and_counters_of_unchanged_names(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    a = await start_fake(nursery, FakeUpstream(json_reply({"id": "a"})))
    path = tmp_path / "config.yaml"
    path.write_text(config_text(a.url, "keep"))
    async with running_proxy(load_config(path, {})) as (engine, client):
        await client.post("/v1/messages", json=MSG)
        engine.runtime.upstreams["keep"].breaker.record_failure(trio.current_time())
        engine.apply_config(load_config(path, {}))
        kept = engine.snapshot().upstreams[0]
        assert kept.requests == 1 and kept.consecutive_failures == 1
