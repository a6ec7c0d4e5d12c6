"""Routing through the real proxy: strategies, pacing, breaker recovery, status, metrics."""

from __future__ import annotations

import json
from collections import Counter
from functools import partial

import pytest
import trio
from trio.testing import MockClock, wait_all_tasks_blocked

from tests.conftest import running_proxy
from tests.fakes import FakeUpstream, Reply, json_reply, make_config, start_fake

MSG = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hello"}]}


def ok(name: str) -> Reply:
    return json_reply({"id": name, "usage": {"input_tokens": 3, "output_tokens": 4}})


def upstreams_yaml(urls: dict[str, str], fields: dict[str, str], routing: str) -> str:
    out = "upstreams:\n"
    for name, url in urls.items():
        out += (
            f"  - name: {name}\n    provider: anthropic\n    base_url: {url}\n"
            f"    api_key: key-{name}-0000000000\n"
        )
        if fields.get(name):
            out += f"    {fields[name]}\n"
    return out + f"routing:\n  {routing}\n"


async def start_named(nursery: trio.Nursery, *names: str) -> dict[str, str]:
    urls = {}
    for name in names:
        fake = await start_fake(nursery, FakeUpstream(ok(name)))
        urls[name] = fake.url
    return urls


async def picks(client: object, n: int) -> list[str]:
    out = []
    for _ in range(n):
        resp = await client.post("/v1/messages", json=MSG)  # type: ignore[attr-defined]
        out.append(resp.headers["x-ccx-upstream"])
    return out


async def test_round_robin_is_smooth_and_weighted(nursery: trio.Nursery) -> None:
    urls = await start_named(nursery, "a", "b", "c")
    cfg = make_config(upstreams_yaml(urls, {"a": "weight: 5"}, "strategy: round_robin"))
    async with running_proxy(cfg) as (_, client):
        assert await picks(client, 7) == ["a", "a", "b", "a", "c", "a", "a"]


async def test_priority_uses_the_lowest_number_and_shares_by_weight(nursery: trio.Nursery) -> None:
    urls = await start_named(nursery, "main1", "main2", "backup")
    fields = {"main1": "priority: 0", "main2": "priority: 0", "backup": "priority: 5"}
    cfg = make_config(upstreams_yaml(urls, fields, "strategy: priority"))
    async with running_proxy(cfg) as (_, client):
        assert Counter(await picks(client, 6)) == {"main1": 3, "main2": 3}


async def test_least_connections_prefers_the_idle_upstream(nursery: trio.Nursery) -> None:
    slow = FakeUpstream(ok("busy"))
    held = Reply(hang=True)
    slow.then(held)
    a = await start_fake(nursery, slow)
    b = await start_fake(nursery, FakeUpstream(ok("idle")))
    cfg = make_config(
        upstreams_yaml({"busy": a.url, "idle": b.url}, {}, "strategy: least_connections")
    )
    async with running_proxy(cfg) as (_, client), trio.open_nursery() as inner:
        inner.start_soon(partial(client.post, "/v1/messages", json=MSG))
        with trio.fail_after(5):
            await held.arrived.wait()  # 'busy' now has one request in flight
        assert await picks(client, 3) == ["idle", "idle", "idle"]
        inner.cancel_scope.cancel()


async def test_request_bucket_paces_with_queue_when_fallback_is_off(
    nursery: trio.Nursery, mock_clock: MockClock
) -> None:
    fake = await start_fake(nursery, FakeUpstream(ok("only")))
    cfg = make_config(
        upstreams_yaml(
            {"only": fake.url},
            {"only": "rate_limit: 2/min"},
            "fallback: false\n  queue_timeout: 60",
        )
    )
    async with running_proxy(cfg) as (engine, client):
        await picks(client, 2)  # the burst: two requests in the first minute
        done = trio.Event()

        async def third() -> None:
            resp = await client.post("/v1/messages", json=MSG)
            assert resp.status_code == 200
            done.set()

        nursery.start_soon(third)
        await wait_all_tasks_blocked()
        assert not done.is_set() and len(fake.requests) == 2  # queued, waiting for a token
        snap = engine.snapshot().upstreams[0]
        assert snap.requests_bucket is not None and snap.requests_bucket.level < 1
        mock_clock.jump(29)
        await wait_all_tasks_blocked()
        assert not done.is_set()
        mock_clock.jump(1.5)  # one token refills every 30 s
        with trio.fail_after(5):
            await done.wait()
        assert len(fake.requests) == 3


async def test_exhausted_bucket_with_queue_timeout_gives_429(
    nursery: trio.Nursery, mock_clock: MockClock
) -> None:
    fake = await start_fake(nursery, FakeUpstream(ok("only")))
    cfg = make_config(
        upstreams_yaml(
            {"only": fake.url}, {"only": "rate_limit: 1/min"}, "fallback: false\n  queue_timeout: 5"
        )
    )
    async with running_proxy(cfg) as (_, client):
        await picks(client, 1)
        result: list[object] = []

        async def second() -> None:
            result.append(await client.post("/v1/messages", json=MSG))

        async with trio.open_nursery() as inner:
            inner.start_soon(second)
            await wait_all_tasks_blocked()
            mock_clock.jump(5.1)
        resp = result[0]
        assert resp.status_code == 429  # type: ignore[attr-defined]
        assert resp.json()["error"]["type"] == "rate_limit_error"  # type: ignore[attr-defined]
        assert 50 <= int(resp.headers["retry-after"]) <= 56  # type: ignore[attr-defined]


async def test_skip_exhausted_upstream_when_fallback_is_on(nursery: trio.Nursery) -> None:
    urls = await start_named(nursery, "small", "big")
    fields = {"small": "rate_limit: 1/hour\n    priority: 0", "big": "priority: 1"}
    cfg = make_config(upstreams_yaml(urls, fields, "strategy: priority"))
    async with running_proxy(cfg) as (_, client):
        assert await picks(client, 3) == ["small", "big", "big"]


async def test_breaker_half_open_probe_closes_it_on_success(
    nursery: trio.Nursery, mock_clock: MockClock
) -> None:
    fake = FakeUpstream(ok("only"))
    fake.then(json_reply({}, status=500), json_reply({}, status=500))
    up = await start_fake(nursery, fake)
    cfg = make_config(
        upstreams_yaml(
            {"only": up.url},
            {},
            "max_attempts: 1\n  breaker: {failure_threshold: 2, cooldown: 10, max_cooldown: 40}",
        )
    )
    async with running_proxy(cfg) as (engine, client):
        for _ in range(2):
            assert (await client.post("/v1/messages", json=MSG)).status_code == 500
        assert engine.snapshot().upstreams[0].breaker == "open"
        assert (await client.post("/v1/messages", json=MSG)).status_code == 503
        mock_clock.jump(10)
        assert engine.snapshot().upstreams[0].breaker == "half_open"
        resp = await client.post("/v1/messages", json=MSG)  # the probe
        assert resp.status_code == 200
        snap = engine.snapshot()
        assert snap.upstreams[0].breaker == "closed"
        kinds = [e.kind for e in snap.events]
        assert kinds.index("breaker_opened") < kinds.index("breaker_half_open")
        assert kinds.index("breaker_half_open") < kinds.index("breaker_closed")


async def test_status_metrics_models_and_health(nursery: trio.Nursery) -> None:
    fake = await start_fake(nursery, FakeUpstream(ok("a")))
    cfg = make_config(f"""
upstreams:
  - name: a
    provider: anthropic
    base_url: {fake.url}
    api_key: sk-ant-secret-value-1234
    models: ["claude-*"]
    model_map: {{claude-fast: claude-haiku-9}}
    rate_limit: 100 requests/min
  - name: off
    provider: openai
    api_key: ${{MISSING_OPENAI_KEY}}
""")
    async with running_proxy(cfg) as (_, client):
        await client.post("/v1/messages", json=MSG)
        status = (await client.get("/_ccx/status")).json()
        a, off = status["upstreams"]
        assert a["name"] == "a" and a["breaker"] == "closed" and a["requests"] == 1
        assert a["input_tokens"] == 3 and a["output_tokens"] == 4
        assert a["requests_bucket"]["capacity"] == 100
        assert a["keys"] == [{"masked": "sk-…1234", "cooldown": 0.0}]
        assert off["enabled"] is False and "MISSING_OPENAI_KEY" in off["disabled_reason"]
        assert "secret-value" not in json.dumps(status)
        metrics = (await client.get("/metrics")).text
        assert 'ccx_requests_total{dialect="anthropic",upstream="a",status="200"} 1' in metrics
        assert 'ccx_upstream_tokens_total{upstream="a",direction="output"} 4' in metrics
        assert "ccx_request_duration_seconds_count 1" in metrics
        models = (await client.get("/v1/models", headers={"x-api-key": "k"})).json()
        assert [m["id"] for m in models["data"]] == ["claude-fast"]
        assert (await client.get("/health")).json()["status"] == "ok"
        assert (await client.get("/nope")).status_code == 404


async def test_access_keys_are_required_when_configured(nursery: trio.Nursery) -> None:
    fake = await start_fake(nursery, FakeUpstream(ok("a")))
    cfg = make_config(f"""
access_keys: [local-proxy-key-123]
upstreams:
  - name: a
    provider: anthropic
    base_url: {fake.url}
    api_key: upstream-key-000000001
""")
    async with running_proxy(cfg) as (_, client):
        denied = await client.post("/v1/messages", json=MSG, headers={"x-api-key": "wrong"})
        assert denied.status_code == 401
        assert denied.json()["error"]["type"] == "authentication_error"
        for header in (
            {"x-api-key": "local-proxy-key-123"},
            {"authorization": "Bearer local-proxy-key-123"},
        ):
            assert (await client.post("/v1/messages", json=MSG, headers=header)).status_code == 200
        assert len(fake.requests) == 2
        assert {r.header(b"x-api-key") for r in fake.requests} == {b"upstream-key-000000001"}


async def test_log_line_has_every_field(nursery: trio.Nursery) -> None:
    fake = await start_fake(nursery, FakeUpstream(ok("a")))
    cfg = make_config(f"""
upstreams:
  - name: a
    provider: anthropic
    base_url: {fake.url}
    api_key: upstream-key-000000001
    model: claude-sent-1
""")
    async with running_proxy(cfg) as (engine, client):
        resp = await client.post("/v1/messages", json=MSG)
        engine.access_log.flush()
        line = engine.access_log.recent[-1]
    assert line["request_id"] == resp.headers["x-ccx-request-id"]
    assert line["dialect"] == "anthropic" and line["model"] == "claude-x"
    assert line["model_sent"] == "claude-sent-1" and line["upstream"] == "a"
    assert line["status"] == 200 and line["stream"] is False
    assert line["latency_ms"] >= line["ttfb_ms"] > 0
    assert line["attempts"][0]["upstream"] == "a" and line["attempts"][0]["outcome"] == "ok"
    assert (line["input_tokens"], line["output_tokens"]) == (3, 4)
    assert isinstance(line["time"], float)


@pytest.mark.parametrize("strategy", ["round_robin", "least_connections", "priority"])
async def test_every_strategy_spreads_equal_upstreams(nursery: trio.Nursery, strategy: str) -> None:
    urls = await start_named(nursery, "x", "y")
    cfg = make_config(upstreams_yaml(urls, {}, f"strategy: {strategy}"))
    async with running_proxy(cfg) as (_, client):
        assert Counter(await picks(client, 10)) == {"x": 5, "y": 5}


async def test_token_bucket_is_charged_the_estimate_then_real_usage(
    nursery: trio.Nursery, mock_clock: MockClock
) -> None:
    usage = {"input_tokens": 600, "output_tokens": 300}
    fake = await start_fake(nursery, FakeUpstream(json_reply({"id": "t", "usage": usage})))
    cfg = make_config(
        upstreams_yaml({"only": fake.url}, {"only": "token_limit: 1000 tokens/min"}, "")
    )
    async with running_proxy(cfg) as (engine, client):
        assert (await client.post("/v1/messages", json=MSG)).status_code == 200
        bucket = engine.snapshot().upstreams[0].tokens_bucket
        assert bucket is not None
        assert bucket.level == pytest.approx(100, abs=1)  # 1000 - (600 + 300), not the estimate
        second = await client.post("/v1/messages", json=MSG)
        assert second.status_code == 200  # the small estimate still fits: 100 left
        third = await client.post("/v1/messages", json=MSG)
        assert third.status_code == 429  # now in debt: wait for the refill
        assert third.json()["error"]["type"] == "rate_limit_error"


async def test_max_concurrent_moves_the_overflow_to_the_next_upstream(
    nursery: trio.Nursery,
) -> None:
    held = Reply(hang=True)
    small = await start_fake(nursery, FakeUpstream(ok("small")).then(held))
    big = await start_fake(nursery, FakeUpstream(ok("big")))
    fields = {"small": "max_concurrent: 1\n    priority: 0", "big": "priority: 1"}
    cfg = make_config(
        upstreams_yaml({"small": small.url, "big": big.url}, fields, "strategy: priority")
    )
    async with running_proxy(cfg) as (engine, client), trio.open_nursery() as inner:
        inner.start_soon(partial(client.post, "/v1/messages", json=MSG))
        with trio.fail_after(5):
            await held.arrived.wait()  # 'small' is at its cap
        assert await picks(client, 2) == ["big", "big"]
        assert engine.snapshot().upstreams[0].active == 1
        inner.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("headers", "path", "check"),
    [
        ({"authorization": "Bearer k"}, "/v1/models", lambda b: b["object"] == "list"),
        (
            {"x-api-key": "k", "anthropic-version": "2023-06-01"},
            "/v1/models",
            lambda b: b["data"][0]["type"] == "model",
        ),
        (
            {"x-goog-api-key": "k"},
            "/v1beta/models",
            lambda b: b["models"][0]["name"] == "models/claude-x",
        ),
    ],
)
async def test_models_list_in_each_clients_shape(
    nursery: trio.Nursery, headers: dict[str, str], path: str, check: object
) -> None:
    fake = await start_fake(nursery, FakeUpstream(ok("a")))
    cfg = make_config(upstreams_yaml({"a": fake.url}, {"a": "models: [claude-x]"}, ""))
    async with running_proxy(cfg) as (_, client):
        body = (await client.get(path, headers=headers)).json()
        assert check(body)  # type: ignore[operator]
