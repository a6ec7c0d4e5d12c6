"""Failover: which failures move on, which go back to the client, and what state they leave."""

from __future__ import annotations

import json
from functools import partial

import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from tests.conftest import running_proxy
from tests.fakes import FakeUpstream, Reply, json_reply, make_config, sse_reply, start_fake

MSG = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
OK = json_reply(
    {"id": "msg_ok", "type": "message", "usage": {"input_tokens": 1, "output_tokens": 1}}
)


def only_upstream(url: str, extra: str = "") -> str:
    return f"""
upstreams:
  - name: only
    provider: anthropic
    base_url: {url}
    api_key: key-only-0000000001
{extra}"""


def two_upstreams(a: str, b: str, routing: str = "strategy: priority", extra_a: str = "") -> str:
    return f"""
upstreams:
  - name: first
    provider: anthropic
    base_url: {a}
    api_key: key-first-000000000001
    priority: 0
{extra_a}
  - name: second
    provider: anthropic
    base_url: {b}
    api_key: key-second-00000000002
    priority: 1
routing:
  {routing}
"""


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
async def test_retryable_status_fails_over_to_the_next_upstream(
    nursery: trio.Nursery, status: int
) -> None:
    a = await start_fake(nursery, FakeUpstream(json_reply({"error": "x"}, status=status)))
    b = await start_fake(nursery, FakeUpstream(OK))
    async with running_proxy(make_config(two_upstreams(a.url, b.url))) as (engine, client):
        resp = await client.post("/v1/messages", json=MSG)
        assert resp.status_code == 200
        assert resp.json()["id"] == "msg_ok"
        assert resp.headers["x-ccx-upstream"] == "second"
        engine.access_log.flush()
        attempts = engine.access_log.recent[-1]["attempts"]
        assert [a["upstream"] for a in attempts] == ["first", "second"]
        assert attempts[0]["status"] == status
        snap = engine.snapshot()
        assert snap.failovers == 1
        assert any(e.kind == "failover" and e.upstream == "first" for e in snap.events)


async def test_overloaded_error_body_fails_over(nursery: trio.Nursery) -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    a = await start_fake(nursery, FakeUpstream(json_reply(body, status=400)))
    b = await start_fake(nursery, FakeUpstream(OK))
    async with running_proxy(make_config(two_upstreams(a.url, b.url))) as (_, client):
        resp = await client.post("/v1/messages", json=MSG)
        assert resp.headers["x-ccx-upstream"] == "second"


async def test_other_4xx_goes_back_to_the_client_unchanged(nursery: trio.Nursery) -> None:
    body = b'{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: bad"}}'
    a = await start_fake(
        nursery,
        FakeUpstream(
            Reply(status=400, headers=[(b"content-type", b"application/json")], body=body)
        ),
    )
    b = await start_fake(nursery, FakeUpstream(OK))
    async with running_proxy(make_config(two_upstreams(a.url, b.url))) as (engine, client):
        resp = await client.post("/v1/messages", json=MSG)
        assert resp.status_code == 400
        assert resp.content == body
        assert b.requests == []
        assert engine.snapshot().upstreams[0].breaker == "closed"


async def test_connect_error_fails_over(nursery: trio.Nursery) -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    b = await start_fake(nursery, FakeUpstream(OK))
    async with running_proxy(make_config(two_upstreams(dead, b.url))) as (engine, client):
        resp = await client.post("/v1/messages", json=MSG)
        assert resp.status_code == 200
        engine.access_log.flush()
        assert engine.access_log.recent[-1]["attempts"][0]["outcome"] == "connect_error"


async def test_first_byte_timeout_fails_over_and_cancels_the_slow_upstream(
    nursery: trio.Nursery,
) -> None:
    cancelled = trio.Event()
    a = await start_fake(nursery, FakeUpstream(Reply(hang=True, on_cancel=cancelled)))
    b = await start_fake(nursery, FakeUpstream(OK))
    extra = "    timeouts: {first_byte: 0.3}\n"
    cfg = make_config(two_upstreams(a.url, b.url, extra_a=extra))
    async with running_proxy(cfg) as (engine, client):
        resp = await client.post("/v1/messages", json=MSG)
        assert resp.headers["x-ccx-upstream"] == "second"
        with trio.fail_after(5):
            await cancelled.wait()  # the abandoned upstream request was closed
        engine.access_log.flush()
        assert engine.access_log.recent[-1]["attempts"][0]["outcome"] == "timeout:first_byte"


async def test_a_json_body_that_stalls_hits_the_total_timeout_and_fails_over(
    nursery: trio.Nursery,
) -> None:
    # Headers came in time, the body never ends: the first-byte deadline no longer applies,
    # the total does (both kept by the watchdog, which aborts the connection).
    cancelled = trio.Event()
    stalled = Reply(
        headers=[(b"content-type", b"application/json")],
        chunks=[b'{"id":"msg_1","content":[', trio.Event()],
        on_cancel=cancelled,
    )
    a = await start_fake(nursery, FakeUpstream(stalled))
    b = await start_fake(nursery, FakeUpstream(OK))
    extra = "    timeouts: {first_byte: 0.2, total: 0.6}\n"
    cfg = make_config(two_upstreams(a.url, b.url, extra_a=extra))
    async with running_proxy(cfg) as (engine, client):
        started = trio.current_time()
        resp = await client.post("/v1/messages", json=MSG)
        assert resp.headers["x-ccx-upstream"] == "second"
        assert trio.current_time() - started >= 0.6  # not cut at the first-byte deadline
        with trio.fail_after(5):
            await cancelled.wait()
        engine.access_log.flush()
        assert engine.access_log.recent[-1]["attempts"][0]["outcome"] == "timeout:total"


async def test_fallback_off_returns_the_first_failure(nursery: trio.Nursery) -> None:
    a = await start_fake(nursery, FakeUpstream(json_reply({"error": "busy"}, status=503)))
    b = await start_fake(nursery, FakeUpstream(OK))
    cfg = make_config(two_upstreams(a.url, b.url, routing="strategy: priority\n  fallback: false"))
    async with running_proxy(cfg) as (_, client):
        resp = await client.post("/v1/messages", json=MSG)
        assert resp.status_code == 503
        assert resp.json() == {"error": "busy"}
        assert b.requests == []


async def test_retry_after_cools_the_upstream_down(nursery: trio.Nursery) -> None:
    limited = json_reply({"error": "slow down"}, status=429, headers={"retry-after": "30"})
    a = await start_fake(nursery, FakeUpstream(limited))
    b = await start_fake(nursery, FakeUpstream(OK))
    async with running_proxy(make_config(two_upstreams(a.url, b.url))) as (engine, client):
        for _ in range(3):
            resp = await client.post("/v1/messages", json=MSG)
            assert resp.headers["x-ccx-upstream"] == "second"
        assert len(a.requests) == 1  # cooling down: not asked again
        first = engine.snapshot().upstreams[0]
        assert 25 < first.cooldown <= 30
        assert first.breaker == "closed"  # rate limiting is not ill health


async def test_all_rate_limited_answers_429_with_retry_after(nursery: trio.Nursery) -> None:
    limited = json_reply({"error": "slow down"}, status=429, headers={"retry-after": "20"})
    a = await start_fake(nursery, FakeUpstream(limited))
    b = await start_fake(nursery, FakeUpstream(limited))
    async with running_proxy(make_config(two_upstreams(a.url, b.url))) as (_, client):
        first = await client.post("/v1/messages", json=MSG)
        assert first.status_code == 429  # the last upstream's own answer
        resp = await client.post("/v1/messages", json=MSG)
        assert resp.status_code == 429
        assert resp.json()["error"]["type"] == "rate_limit_error"
        assert 18 <= int(resp.headers["retry-after"]) <= 20
        assert len(a.requests) == len(b.requests) == 1


async def test_key_rejected_rests_that_key_and_uses_the_next(nursery: trio.Nursery) -> None:
    def by_key(request: object) -> Reply:
        key = request.header(b"x-api-key")  # type: ignore[attr-defined]
        return json_reply({"error": "bad key"}, status=401) if key == b"key-bad-0000000001" else OK

    up = FakeUpstream()
    up.default = by_key  # type: ignore[assignment]
    a = await start_fake(nursery, up)
    cfg = make_config(f"""
upstreams:
  - name: pool
    provider: anthropic
    base_url: {a.url}
    api_keys: [key-bad-0000000001, key-good-000000002]
""")
    async with running_proxy(cfg) as (engine, client):
        for _ in range(3):
            resp = await client.post("/v1/messages", json=MSG)
            assert resp.status_code == 200
        keys = [r.header(b"x-api-key") for r in a.requests]
        assert keys.count(b"key-bad-0000000001") == 1  # rested after the 401
        snap = engine.snapshot().upstreams[0]
        bad = snap.keys[0]
        assert bad.masked == "key…0001" and bad.cooldown > 0
        assert snap.last_error == "401 with key key…0001"
        assert "key-bad" not in json.dumps(engine.snapshot().to_json())


async def test_breaker_opens_and_no_candidate_gives_503_with_retry_after(
    nursery: trio.Nursery,
) -> None:
    a = await start_fake(nursery, FakeUpstream(json_reply({"error": "down"}, status=500)))
    routing = "routing:\n  max_attempts: 1\n  breaker: {failure_threshold: 2, cooldown: 30}\n"
    cfg = make_config(only_upstream(a.url, routing))
    async with running_proxy(cfg) as (engine, client):
        for _ in range(2):
            assert (await client.post("/v1/messages", json=MSG)).status_code == 500
        resp = await client.post("/v1/messages", json=MSG)
        assert resp.status_code == 503
        assert resp.json()["error"]["type"] == "overloaded_error"
        assert 28 <= int(resp.headers["retry-after"]) <= 30
        assert len(a.requests) == 2
        snap = engine.snapshot()
        assert snap.upstreams[0].breaker == "open"
        assert any(e.kind == "breaker_opened" for e in snap.events)


async def test_stream_error_event_before_content_fails_over(nursery: trio.Nursery) -> None:
    overloaded = sse_reply(
        [
            b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":1}}}\n\n',
            b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
        ]
    )
    good = sse_reply(
        [
            b'event: message_start\ndata: {"type":"message_start","message":{"id":"m2","usage":{"input_tokens":1}}}\n\n',
            b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
            b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
        ]
    )
    a = await start_fake(nursery, FakeUpstream(overloaded))
    b = await start_fake(nursery, FakeUpstream(good))
    async with running_proxy(make_config(two_upstreams(a.url, b.url))) as (engine, client):
        resp = await client.post("/v1/messages", json={**MSG, "stream": True})
        assert resp.status_code == 200
        assert b'"m2"' in resp.content and b"overloaded" not in resp.content
        engine.access_log.flush()
        assert engine.access_log.recent[-1]["attempts"][0]["outcome"] == "overloaded_error"


async def test_stream_early_close_before_content_fails_over(nursery: trio.Nursery) -> None:
    early = sse_reply(
        [b'event: message_start\ndata: {"type":"message_start","message":{"id":"m"}}\n\n']
    )
    good = sse_reply(
        [
            b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
            b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
        ]
    )
    a = await start_fake(nursery, FakeUpstream(early))
    b = await start_fake(nursery, FakeUpstream(good))
    async with running_proxy(make_config(two_upstreams(a.url, b.url))) as (_, client):
        resp = await client.post("/v1/messages", json={**MSG, "stream": True})
        assert resp.headers["x-ccx-upstream"] == "second"


async def test_failure_after_commit_ends_with_the_dialects_error_event(
    nursery: trio.Nursery,
) -> None:
    content = (
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
    )
    a = await start_fake(nursery, FakeUpstream(sse_reply([content])))  # then closes: truncated
    b = await start_fake(nursery, FakeUpstream(OK))
    async with running_proxy(make_config(two_upstreams(a.url, b.url))) as (engine, client):
        resp = await client.post("/v1/messages", json={**MSG, "stream": True})
        assert resp.status_code == 200
        assert resp.content.startswith(content)
        tail = resp.content[len(content) :]
        assert tail.startswith(b"event: error\n")
        assert b"message_stop" not in resp.content
        assert b.requests == []  # committed: no failover after bytes reached the client
        engine.access_log.flush()
        assert "stream failed" in engine.access_log.recent[-1]["error"]


async def test_idle_timeout_mid_stream_sends_error_event(nursery: trio.Nursery) -> None:
    never = trio.Event()
    content = (
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
    )
    cancelled = trio.Event()
    stalled = sse_reply([content, never])
    stalled.on_cancel = cancelled
    a = await start_fake(nursery, FakeUpstream(stalled))
    cfg = make_config(only_upstream(a.url, "    timeouts: {idle: 0.3}\n"))
    async with running_proxy(cfg) as (_, client):
        resp = await client.post("/v1/messages", json={**MSG, "stream": True})
        assert resp.content.startswith(content)
        assert b"event: error" in resp.content and b"timeout" in resp.content
        with trio.fail_after(5):
            await cancelled.wait()


async def test_client_disconnect_cancels_the_upstream_request(nursery: trio.Nursery) -> None:
    cancelled = trio.Event()
    hang = Reply(hang=True, on_cancel=cancelled)
    a = await start_fake(nursery, FakeUpstream(hang))
    cfg = make_config(only_upstream(a.url))
    async with running_proxy(cfg) as (engine, client):
        async with trio.open_nursery() as inner:
            inner.start_soon(partial(client.post, "/v1/messages", json=MSG))
            with trio.fail_after(5):
                await hang.arrived.wait()  # the request reached the upstream
            inner.cancel_scope.cancel()  # the client goes away
        with trio.fail_after(5):
            await cancelled.wait()
        await wait_all_tasks_blocked()
        assert engine.snapshot().active_total == 0
        snap = engine.snapshot().upstreams[0]
        assert snap.failures == 0 and snap.breaker == "closed"
        engine.access_log.flush()
        assert engine.access_log.recent[-1]["status"] == 499


async def test_client_disconnect_mid_stream_closes_the_upstream_stream(
    nursery: trio.Nursery,
) -> None:
    gate = trio.Event()
    content = (
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
    )
    cancelled = trio.Event()
    reply = sse_reply([content, gate, b"never sent"])
    reply.on_cancel = cancelled
    a = await start_fake(nursery, FakeUpstream(reply))
    cfg = make_config(only_upstream(a.url))
    async with running_proxy(cfg) as (engine, client):
        async with client.stream("POST", "/v1/messages", json={**MSG, "stream": True}) as resp:
            first = await resp.aiter_raw().__anext__()
            assert first == content
        with trio.fail_after(5):
            await cancelled.wait()
        assert a.closed_streams == 1
        await wait_all_tasks_blocked()
        assert engine.snapshot().active_total == 0
        assert engine.snapshot().upstreams[0].failures == 0


async def test_client_leaving_after_the_last_event_counts_as_served(
    nursery: trio.Nursery,
) -> None:
    never = trio.Event()  # the upstream keeps its response open after message_stop
    complete = [
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":3}}}\n\n',
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}\n\n',
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ]
    a = await start_fake(nursery, FakeUpstream(sse_reply([*complete, never])))
    cfg = make_config(only_upstream(a.url))
    async with running_proxy(cfg) as (engine, client):
        got = b""
        async with client.stream("POST", "/v1/messages", json={**MSG, "stream": True}) as resp:
            async for chunk in resp.aiter_raw():
                got += chunk
                if b"message_stop" in got:
                    break  # the client has all it needs and hangs up
        await wait_all_tasks_blocked()
        engine.access_log.flush()
        line = engine.access_log.recent[-1]
        assert line["status"] == 200 and line["error"] is None
        assert line["output_tokens"] == 7
        assert engine.snapshot().upstreams[0].successes == 1
