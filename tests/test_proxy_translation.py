"""Cross-dialect through the real proxy: any client API served by any upstream API.

The sans-IO translators have their own golden tests; these drive the same golden data
through the proxy's network path (client -> proxy -> fake upstream on 127.0.0.1), so what
is asserted here is the wiring: paths, auth headers, bodies, stream relay, errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from core.dialects import Dialect
from core.sse import SSEParser
from tests.conftest import running_proxy
from tests.fakes import FakeUpstream, Reply, json_reply, make_config, sse_reply, start_fake

DATA = Path(__file__).parent / "data"
PAIRS = [(c, u) for c in Dialect for u in Dialect if c != u]
UPSTREAM_PATH = {
    Dialect.ANTHROPIC: "/v1/messages",
    Dialect.OPENAI_CHAT: "/chat/completions",
    Dialect.OPENAI_RESPONSES: "/responses",
    Dialect.GEMINI: "/v1beta/models/up-model:generateContent",
}
AUTH_HEADER = {
    Dialect.ANTHROPIC: (b"x-api-key", b"upstream-key-0000000001"),
    Dialect.OPENAI_CHAT: (b"authorization", b"Bearer upstream-key-0000000001"),
    Dialect.OPENAI_RESPONSES: (b"authorization", b"Bearer upstream-key-0000000001"),
    Dialect.GEMINI: (b"x-goog-api-key", b"upstream-key-0000000001"),
}


def client_call(client: Dialect, body: dict[str, Any], stream: bool) -> tuple[str, dict[str, Any]]:
    """(path, body) for a client of this dialect asking for model 'client-model'."""
    if client is Dialect.GEMINI:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        body = {k: v for k, v in body.items() if k not in ("model", "stream")}
        return f"/v1beta/models/client-model:{method}", body
    path = {
        Dialect.ANTHROPIC: "/v1/messages",
        Dialect.OPENAI_CHAT: "/v1/chat/completions",
        Dialect.OPENAI_RESPONSES: "/v1/responses",
    }[client]
    body = {**body, "model": "client-model"}
    if stream:
        body["stream"] = True
        if client is Dialect.OPENAI_CHAT:
            body["stream_options"] = {"include_usage": True}
    else:
        body.pop("stream", None)
    return path, body


def config(up: Dialect, url: str) -> Any:
    return make_config(f"""
upstreams:
  - name: other
    provider: {up}
    base_url: {url}
    api_key: upstream-key-0000000001
    model: up-model
""")


def load(name: str) -> Any:
    return json.loads((DATA / "translate" / name).read_text())


def events(raw: bytes) -> list[tuple[str | None, Any]]:
    parser = SSEParser()
    out = []
    for e in parser.feed(raw) + parser.close():
        data = e.data if e.data == "[DONE]" else _strip_clock(json.loads(e.data))
        out.append((e.event, data))
    return out


def _no_stream(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("stream", "stream_options")}


def _strip_clock(value: Any) -> Any:
    """Drop wall-clock stamps (`created`, `created_at`): the proxy's differ from the file's."""
    if isinstance(value, dict):
        return {k: _strip_clock(v) for k, v in value.items() if k not in ("created", "created_at")}
    if isinstance(value, list):
        return [_strip_clock(v) for v in value]
    return value


@pytest.mark.parametrize(("client", "up"), PAIRS, ids=[f"{c}<-{u}" for c, u in PAIRS])
async def test_json_request_and_response_translate_through_the_proxy(
    nursery: trio.Nursery, client: Dialect, up: Dialect
) -> None:
    fake = await start_fake(nursery, FakeUpstream(json_reply(load(f"input/response.{up}.json"))))
    path, body = client_call(client, load(f"input/request.tools.{client}.json"), stream=False)
    async with running_proxy(config(up, fake.url)) as (engine, http):
        resp = await http.post(path, json=body, headers={"x-api-key": "client-key"})
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/json"
        expected = load(f"golden/response.{up}--{client}.json")
        assert _strip_clock(resp.json()) == _strip_clock(expected)
        seen = fake.requests[0]
        assert seen.path == UPSTREAM_PATH[up]
        name, value = AUTH_HEADER[up]
        assert seen.header(name) == value
        assert b"client-key" not in b"".join(v for _, v in seen.headers)
        sent = json.loads(seen.body)
        golden = load(f"golden/request.tools.{client}--{up}.json")
        assert _no_stream(sent) == _no_stream(golden)  # the test asked without streaming
        engine.access_log.flush()
        line = engine.access_log.recent[-1]
        assert line["model"] == "client-model" and line["model_sent"] == "up-model"
        assert line["input_tokens"] and line["output_tokens"]


@pytest.mark.parametrize(("client", "up"), PAIRS, ids=[f"{c}<-{u}" for c, u in PAIRS])
async def test_streams_translate_through_the_proxy(
    nursery: trio.Nursery, client: Dialect, up: Dialect
) -> None:
    upstream_bytes = (DATA / "translate_streams" / f"upstream_{up}.sse").read_bytes()
    # Split mid-event so the proxy's incremental translation is exercised.
    third = len(upstream_bytes) // 3
    chunks: list[bytes | trio.Event] = [
        upstream_bytes[:third],
        upstream_bytes[third : 2 * third],
        upstream_bytes[2 * third :],
    ]
    fake = await start_fake(nursery, FakeUpstream(sse_reply(chunks)))
    path, body = client_call(client, load(f"input/request.tools.{client}.json"), stream=True)
    async with running_proxy(config(up, fake.url)) as (engine, http):
        resp = await http.post(path, json=body)
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/event-stream"
        golden = (DATA / "translate_streams" / f"{up}__{client}.sse").read_bytes()
        assert events(resp.content) == events(golden)
        if up is Dialect.GEMINI:
            assert fake.requests[0].path == "/v1beta/models/up-model:streamGenerateContent"
            assert fake.requests[0].query == "alt=sse"
        engine.access_log.flush()
        line = engine.access_log.recent[-1]
        assert line["status"] == 200 and line["error"] is None
        assert line["output_tokens"]


async def test_claude_first_gemini_on_rate_limit(nursery: trio.Nursery) -> None:
    """The product promise: an Anthropic client, served by Gemini when Claude says 429."""
    claude = await start_fake(
        nursery,
        FakeUpstream(
            json_reply(
                {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
                status=429,
                headers={"retry-after": "60"},
            )
        ),
    )
    gemini = await start_fake(nursery, FakeUpstream(json_reply(load("input/response.gemini.json"))))
    cfg = make_config(f"""
upstreams:
  - name: claude
    provider: anthropic
    base_url: {claude.url}
    api_key: key-claude-00000000001
  - name: gemini
    provider: gemini
    base_url: {gemini.url}
    api_key: key-gemini-00000000001
    model: gemini-2.5-pro
routing:
  strategy: priority
""")
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello"}],
    }
    async with running_proxy(cfg) as (engine, http):
        resp = await http.post("/v1/messages", json=body)
        assert resp.status_code == 200
        assert resp.headers["x-ccx-upstream"] == "gemini"
        answer = resp.json()
        assert answer["type"] == "message" and answer["model"] == "claude-sonnet-4-5"
        assert answer["content"][0]["type"] in ("text", "thinking", "tool_use")
        assert gemini.requests[0].path == "/v1beta/models/gemini-2.5-pro:generateContent"
        assert json.loads(gemini.requests[0].body)["contents"][0]["parts"][0]["text"] == "hello"
        # The next request goes straight to Gemini: Claude is cooling down.
        again = await http.post("/v1/messages", json=body)
        assert again.headers["x-ccx-upstream"] == "gemini" and len(claude.requests) == 1
        assert engine.snapshot().upstreams[0].cooldown > 50


async def test_upstream_error_becomes_the_client_dialects_error(nursery: trio.Nursery) -> None:
    body = {
        "error": {
            "code": 400,
            "message": "Invalid JSON payload: bad field",
            "status": "INVALID_ARGUMENT",
        }
    }
    fake = await start_fake(nursery, FakeUpstream(json_reply(body, status=400)))
    async with running_proxy(config(Dialect.GEMINI, fake.url)) as (_, http):
        resp = await http.post(
            "/v1/chat/completions",
            json={"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert resp.status_code == 400
        err = resp.json()["error"]
        assert err["message"] == "Invalid JSON payload: bad field"
        assert err["type"] == "invalid_request_error"


async def test_cross_dialect_upstream_without_a_model_is_not_a_candidate(
    nursery: trio.Nursery,
) -> None:
    fake = await start_fake(nursery)
    cfg = make_config(f"""
upstreams:
  - name: gem
    provider: gemini
    base_url: {fake.url}
    api_key: key-gemini-00000000001
""")
    async with running_proxy(cfg) as (_, http):
        resp = await http.post(
            "/v1/messages", json={"model": "claude-x", "max_tokens": 5, "messages": []}
        )
        assert resp.status_code == 404
        assert resp.json()["error"]["type"] == "not_found_error"
        assert fake.requests == []


async def test_count_tokens_goes_to_gemini_or_is_estimated_locally(
    nursery: trio.Nursery,
) -> None:
    gemini = await start_fake(nursery, FakeUpstream(json_reply({"totalTokens": 42})))
    body = {"model": "claude-x", "messages": [{"role": "user", "content": "count me " * 40}]}
    async with running_proxy(config(Dialect.GEMINI, gemini.url)) as (_, http):
        resp = await http.post("/v1/messages/count_tokens", json=body)
        assert resp.json() == {"input_tokens": 42}
        assert gemini.requests[0].path == "/v1beta/models/up-model:countTokens"
    chat = await start_fake(nursery)
    async with running_proxy(config(Dialect.OPENAI_CHAT, chat.url)) as (_, http):
        resp = await http.post("/v1/messages/count_tokens", json=body)
        assert resp.status_code == 200
        assert 60 < resp.json()["input_tokens"] < 200  # ~360 chars / 4, plus overhead
        assert resp.headers.get("x-ccx-request-id")
        assert chat.requests == []


async def test_gemini_client_json_array_stream_from_anthropic(nursery: trio.Nursery) -> None:
    upstream_bytes = (DATA / "translate_streams" / "upstream_anthropic.sse").read_bytes()
    fake = await start_fake(nursery, FakeUpstream(sse_reply([upstream_bytes])))
    async with running_proxy(config(Dialect.ANTHROPIC, fake.url)) as (_, http):
        resp = await http.post(
            "/v1beta/models/client-model:streamGenerateContent",
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        )
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/json")
        items = json.loads(resp.content)
        assert isinstance(items, list) and items[-1]["candidates"][0]["finishReason"]


async def test_early_close_of_a_translated_stream_fails_over(nursery: trio.Nursery) -> None:
    broken = sse_reply(
        [
            b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,'
            b'"model":"m","choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
        ]
    )
    good_bytes = (DATA / "translate_streams" / "upstream_gemini.sse").read_bytes()
    a = await start_fake(nursery, FakeUpstream(broken))
    b = await start_fake(nursery, FakeUpstream(sse_reply([good_bytes])))
    cfg = make_config(f"""
upstreams:
  - name: chat
    provider: openai
    base_url: {a.url}
    api_key: key-chat-000000000001
    model: gpt-x
    priority: 0
  - name: gem
    provider: gemini
    base_url: {b.url}
    api_key: key-gem-0000000000001
    model: gemini-x
    priority: 1
routing: {{strategy: priority}}
""")
    async with running_proxy(cfg) as (_, http):
        resp = await http.post(
            "/v1/messages",
            json={"model": "claude-x", "max_tokens": 5, "stream": True, "messages": []},
        )
        assert resp.headers["x-ccx-upstream"] == "gem"
        names = [e for e, _ in events(resp.content)]
        assert names[0] == "message_start" and names[-1] == "message_stop"


_ = Reply  # the fakes module's reply type, for readers following the imports
