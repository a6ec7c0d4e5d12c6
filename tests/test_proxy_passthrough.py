"""Same-dialect forwarding is transparent: bytes in, bytes out, for all four APIs."""

from __future__ import annotations

import json

import trio

from tests.conftest import running_proxy
from tests.fakes import FakeUpstream, Reply, json_reply, make_config, sse_reply, start_fake

ANTHROPIC_JSON = (
    b'{"id":"msg_01","type":"message","role":"assistant","model":"claude-x",'
    b'"content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn",'
    b'"usage":{"input_tokens":12,"output_tokens":3},  "vendor_extra": {"kept": true}}'
)
ANTHROPIC_SSE = [
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":'
    b'"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,'
    b'"usage":{"input_tokens":25,"output_tokens":1}}}\n\n',
    b'event: ping\ndata: {"type":"ping"}\n\n',
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Hel',
    b'lo"}}\n\nevent: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn",'
    b'"stop_sequence":null},"usage":{"output_tokens":15}}\n\n',
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]
OPENAI_SSE = [
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n',
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x",'
    b'"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n',
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x",'
    b'"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}\n\n',
    b"data: [DONE]\n\n",
]
RESPONSES_SSE = [
    b'event: response.created\ndata: {"type":"response.created","sequence_number":0,'
    b'"response":{"id":"resp_1","object":"response","status":"in_progress","output":[]}}\n\n',
    b'event: response.output_item.added\ndata: {"type":"response.output_item.added",'
    b'"sequence_number":1,"output_index":0,"item":{"type":"message","id":"msg_1",'
    b'"role":"assistant","content":[]}}\n\n',
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
    b'"sequence_number":2,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}\n\n',
    b'event: response.completed\ndata: {"type":"response.completed","sequence_number":3,'
    b'"response":{"id":"resp_1","object":"response","status":"completed","output":[],'
    b'"usage":{"input_tokens":7,"output_tokens":1,"total_tokens":8}}}\n\n',
]
GEMINI_SSE = [
    b'data: {"candidates": [{"content": {"parts": [{"text": "Hel"}],"role": "model"},'
    b'"index": 0}],"usageMetadata": {"promptTokenCount": 4,"totalTokenCount": 4},'
    b'"modelVersion": "gemini-x"}\r\n\r\n',
    b'data: {"candidates": [{"content": {"parts": [{"text": "lo"}],"role": "model"},'
    b'"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 4,'
    b'"candidatesTokenCount": 2,"totalTokenCount": 6},"modelVersion": "gemini-x"}\r\n\r\n',
]


def config_for(provider: str, url: str, extra: str = "") -> str:
    return f"""
upstreams:
  - name: up1
    provider: {provider}
    base_url: {url}
    api_key: upstream-secret-key-0001
{extra}
"""


async def test_anthropic_json_passes_through_byte_exact(nursery: trio.Nursery) -> None:
    fake = await start_fake(
        nursery,
        FakeUpstream(
            Reply(
                headers=[(b"content-type", b"application/json"), (b"request-id", b"req_up")],
                body=ANTHROPIC_JSON,
            )
        ),
    )
    body = b'{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"unknown_field":[1,2]}'
    async with running_proxy(make_config(config_for("anthropic", fake.url))) as (engine, client):
        resp = await client.post(
            "/v1/messages?beta=true",
            content=body,
            headers={
                "x-api-key": "client-key-not-forwarded",
                "anthropic-version": "2023-06-01",
                "anthropic-beta": "tools-2024",
                "content-type": "application/json",
                "connection": "keep-alive",
                "keep-alive": "timeout=5",
            },
        )
        assert resp.status_code == 200
        assert resp.content == ANTHROPIC_JSON
        assert resp.headers["request-id"] == "req_up"
        assert resp.headers["x-ccx-upstream"] == "up1"
        request_id = resp.headers["x-ccx-request-id"]
        seen = fake.requests[0]
        assert seen.path == "/v1/messages" and seen.query == "beta=true"
        assert seen.body == body
        assert seen.header(b"x-api-key") == b"upstream-secret-key-0001"
        assert seen.header(b"anthropic-version") == b"2023-06-01"
        assert seen.header(b"anthropic-beta") == b"tools-2024"
        assert seen.header(b"keep-alive") is None
        engine.access_log.flush()
        line = engine.access_log.recent[-1]
        assert line["request_id"] == request_id
        assert (line["input_tokens"], line["output_tokens"]) == (12, 3)


async def test_model_mapping_rewrites_only_the_model(nursery: trio.Nursery) -> None:
    fake = await start_fake(nursery, FakeUpstream(json_reply({"id": "x"})))
    extra = "    model_map: {claude-alias: claude-real-1}\n"
    async with running_proxy(make_config(config_for("anthropic", fake.url, extra))) as (_, client):
        payload = {"model": "claude-alias", "max_tokens": 5, "messages": [], "extra": {"a": 1}}
        resp = await client.post("/v1/messages", json=payload)
        assert resp.status_code == 200
        sent = json.loads(fake.requests[0].body)
        assert sent == {**payload, "model": "claude-real-1"}


async def _stream_through(
    provider: str,
    path: str,
    chunks: list[bytes],
    body: dict,
    nursery: trio.Nursery,
    headers: dict[str, str] | None = None,
) -> tuple[bytes, FakeUpstream, object]:
    fake = await start_fake(nursery, FakeUpstream(sse_reply(list(chunks))))
    async with running_proxy(make_config(config_for(provider, fake.url))) as (engine, client):
        async with client.stream("POST", path, json=body, headers=headers or {}) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            got = b"".join([c async for c in resp.aiter_raw()])
        engine.access_log.flush()
        return got, fake, engine.access_log.recent[-1]


async def test_anthropic_stream_is_relayed_byte_exact(nursery: trio.Nursery) -> None:
    body = {"model": "claude-x", "max_tokens": 5, "stream": True, "messages": []}
    got, _, line = await _stream_through("anthropic", "/v1/messages", ANTHROPIC_SSE, body, nursery)
    assert got == b"".join(ANTHROPIC_SSE)
    assert line["stream"] is True and line["status"] == 200
    assert (line["input_tokens"], line["output_tokens"]) == (25, 15)


async def test_openai_chat_stream_is_relayed_byte_exact(nursery: trio.Nursery) -> None:
    body = {"model": "gpt-x", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    got, fake, line = await _stream_through(
        "openai",
        "/v1/chat/completions",
        OPENAI_SSE,
        body,
        nursery,
        headers={"authorization": "Bearer client-key"},
    )
    assert got == b"".join(OPENAI_SSE)
    assert fake.requests[0].path == "/chat/completions"
    assert fake.requests[0].header(b"authorization") == b"Bearer upstream-secret-key-0001"
    assert (line["input_tokens"], line["output_tokens"]) == (9, 2)


async def test_openai_responses_stream_is_relayed_byte_exact(nursery: trio.Nursery) -> None:
    body = {"model": "gpt-x", "stream": True, "input": "hi"}
    got, fake, line = await _stream_through(
        "openai-responses", "/v1/responses", RESPONSES_SSE, body, nursery
    )
    assert got == b"".join(RESPONSES_SSE)
    assert fake.requests[0].path == "/responses"
    assert (line["input_tokens"], line["output_tokens"]) == (7, 1)


async def test_gemini_sse_stream_is_relayed_byte_exact(nursery: trio.Nursery) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    got, fake, line = await _stream_through(
        "gemini",
        "/v1beta/models/gemini-x:streamGenerateContent?alt=sse&key=client-key",
        GEMINI_SSE,
        body,
        nursery,
    )
    assert got == b"".join(GEMINI_SSE)
    seen = fake.requests[0]
    assert seen.path == "/v1beta/models/gemini-x:streamGenerateContent"
    assert seen.query == "alt=sse"  # the client's key= is not forwarded
    assert seen.header(b"x-goog-api-key") == b"upstream-secret-key-0001"
    assert (line["input_tokens"], line["output_tokens"]) == (4, 2)


async def test_gemini_json_array_stream_form(nursery: trio.Nursery) -> None:
    fake = await start_fake(nursery, FakeUpstream(sse_reply(list(GEMINI_SSE))))
    async with running_proxy(make_config(config_for("gemini", fake.url))) as (_, client):
        resp = await client.post(
            "/v1/models/gemini-x:streamGenerateContent",
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
            headers={"x-goog-api-key": "client"},
        )
        assert resp.status_code == 200
        items = json.loads(resp.content)
        texts = [i["candidates"][0]["content"]["parts"][0]["text"] for i in items]
        assert texts == ["Hel", "lo"]
        assert fake.requests[0].query == "alt=sse"


async def test_gemini_generate_content_json(nursery: trio.Nursery) -> None:
    answer = b'{"candidates":[{"content":{"parts":[{"text":"ok"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1}}'
    fake = await start_fake(
        nursery, FakeUpstream(Reply(headers=[(b"content-type", b"application/json")], body=answer))
    )
    async with running_proxy(make_config(config_for("gemini", fake.url))) as (_, client):
        resp = await client.post(
            "/v1beta/models/gemini-x:generateContent",
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        )
        assert resp.content == answer
        assert fake.requests[0].path == "/v1beta/models/gemini-x:generateContent"


async def test_bad_json_gets_the_dialects_own_error(nursery: trio.Nursery) -> None:
    fake = await start_fake(nursery)
    async with running_proxy(make_config(config_for("openai", fake.url))) as (_, client):
        resp = await client.post("/v1/chat/completions", content=b"{not json")
        assert resp.status_code == 400
        assert resp.json()["error"]["type"] == "invalid_request_error"
        resp = await client.post("/v1/messages", content=b"[]")
        assert resp.status_code == 400
        assert resp.json()["type"] == "error"
        assert fake.requests == []
