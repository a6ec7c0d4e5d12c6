"""The bench's fake upstream speaks each dialect well-formed, and the load generator counts it.

The fake runs in-process on 127.0.0.1 (a port picked by the kernel); answers are parsed
with httpx, core.sse and json, as a proxy would.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from bench.fake_upstream import Counters, Fault, FaultKind, Settings, make_listener, serve
from bench.loadgen import LoadSpec, run_load
from bench.payloads import Kind, build_request, request_body, request_path
from core.sse import SSEEvent, SSEParser


@asynccontextmanager
async def fake(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Counters, int]]:
    counters = Counters()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve, make_listener(0), settings, counters)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client, counters, port
        nursery.cancel_scope.cancel()


async def post(client: httpx.AsyncClient, kind: Kind, model: str, stream: bool) -> httpx.Response:
    path = request_path(kind, model, stream=stream)
    return await client.post(path, content=request_body(kind, model, stream=stream))


def sse_events(response: httpx.Response) -> list[SSEEvent]:
    assert response.headers["content-type"] == "text/event-stream"
    parser = SSEParser()
    events = parser.feed(response.content)
    assert parser.close() == []  # nothing left without its blank line
    return events


def payloads(events: list[SSEEvent]) -> list[Any]:
    return [json.loads(e.data) for e in events if e.data != "[DONE]"]


ALL = list(Kind)


@pytest.mark.parametrize("kind", ALL)
async def test_each_dialect_answers_json_with_text_and_usage(kind: Kind) -> None:
    async with fake(Settings(events=7)) as (client, counters, _):
        response = await post(client, kind, "bench-model", stream=False)
    assert response.status_code == 200
    body = response.json()
    assert int(response.headers["content-length"]) == len(response.content)
    usage_path = {
        Kind.ANTHROPIC: ("usage", "output_tokens"),
        Kind.OPENAI_CHAT: ("usage", "completion_tokens"),
        Kind.OPENAI_RESPONSES: ("usage", "output_tokens"),
        Kind.GEMINI: ("usageMetadata", "candidatesTokenCount"),
    }[kind]
    assert body[usage_path[0]][usage_path[1]] == 7
    assert counters.requests == 1


async def test_anthropic_stream_follows_the_messages_grammar() -> None:
    async with fake(Settings(events=5)) as (client, _, _):
        response = await post(client, Kind.ANTHROPIC, "claude-x", stream=True)
    events = sse_events(response)
    names = [e.event for e in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[3:8] == ["content_block_delta"] * 5
    assert names[8:] == ["content_block_stop", "message_delta", "message_stop"]
    data = payloads(events)
    assert all(d["type"] == e.event for d, e in zip(data, events, strict=True))
    assert data[-2]["usage"]["output_tokens"] == 5
    assert "".join(d["delta"]["text"] for d in data[3:8]) == "The proxy relays each event"


async def test_openai_chat_stream_ends_with_a_usage_chunk_and_done() -> None:
    async with fake(Settings(events=4)) as (client, _, _):
        response = await post(client, Kind.OPENAI_CHAT, "gpt-x", stream=True)
    events = sse_events(response)
    assert events[-1].data == "[DONE]"
    chunks = payloads(events)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4


async def test_responses_stream_numbers_its_events_and_completes() -> None:
    async with fake(Settings(events=3)) as (client, _, _):
        response = await post(client, Kind.OPENAI_RESPONSES, "gpt-x", stream=True)
    data = payloads(sse_events(response))
    assert [d["sequence_number"] for d in data] == list(range(len(data)))
    types = [d["type"] for d in data]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert types.count("response.output_text.delta") == 3
    assert data[-1]["response"]["usage"]["output_tokens"] == 3
    assert data[-1]["response"]["output"][0]["content"][0]["text"] == "The proxy relays"


async def test_gemini_streams_as_sse_or_as_a_json_array() -> None:
    async with fake(Settings(events=3)) as (client, _, _):
        sse = await post(client, Kind.GEMINI, "gemini-x", stream=True)
        array = await client.post("/v1beta/models/gemini-x:streamGenerateContent", content=b"{}")
    assert b"\r\n\r\n" in sse.content  # Gemini's own event separator
    chunks = payloads(sse_events(sse))
    assert len(chunks) == 3 and array.json() == chunks
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 3


async def test_the_model_name_carries_per_request_knobs() -> None:
    async with fake(Settings(events=50)) as (client, _, _):
        response = await post(client, Kind.ANTHROPIC, "claude-x~e2~d1", stream=True)
    names = [e.event for e in sse_events(response)]
    assert names.count("content_block_delta") == 2


async def test_status_faults_hit_exactly_their_share_with_the_dialects_error_body() -> None:
    settings = Settings(faults=(Fault.parse("429:0.5"),))
    async with fake(settings) as (client, counters, _):
        statuses = [(await post(client, Kind.ANTHROPIC, "m", False)) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 429, 200, 429]
    assert statuses[1].json()["error"]["type"] == "rate_limit_error"
    assert statuses[1].headers["retry-after"] == "1"
    assert counters.faults == 2


async def test_an_error_event_fault_ends_the_stream_with_the_dialects_error() -> None:
    settings = Settings(events=6, faults=(Fault(kind=FaultKind.ERROR_EVENT, share=1.0),))
    async with fake(settings) as (client, _, _):
        response = await post(client, Kind.ANTHROPIC, "m", stream=True)
    events = sse_events(response)
    assert [e.event for e in events].count("content_block_delta") == 3
    assert events[-1].event == "error"
    assert json.loads(events[-1].data)["error"]["type"] == "overloaded_error"


async def test_an_early_close_truncates_the_stream() -> None:
    settings = Settings(events=6, faults=(Fault(kind=FaultKind.CLOSE, share=1.0),))
    async with fake(settings) as (client, _, _):
        with pytest.raises(httpx.RemoteProtocolError):
            await post(client, Kind.OPENAI_CHAT, "m", stream=True)


async def test_loadgen_counts_requests_and_first_events_over_keep_alive() -> None:
    async with fake(Settings(events=5)) as (_, counters, port):
        request = build_request(Kind.ANTHROPIC, host="127.0.0.1", port=port, stream=True)
        spec = LoadSpec(
            port=port, request=request, clients=3, requests=30, stream=True, expect=b"message_stop"
        )
        result = await run_load(spec)
    assert (result.completed, result.failed) == (30, 0)
    assert len(result.first_events) == 30
    assert result.latency(50) >= result.first_event(50) > 0
    assert counters.connections == 3  # keep-alive: one connection per client


async def test_loadgen_reports_faults_as_failures() -> None:
    settings = Settings(faults=(Fault.parse("500:0.25"),))
    async with fake(settings) as (_, _, port):
        request = build_request(Kind.OPENAI_CHAT, host="127.0.0.1", port=port)
        result = await run_load(LoadSpec(port=port, request=request, clients=2, requests=40))
    assert result.statuses == {200: 30, 500: 10}
    assert (result.completed, result.failed) == (30, 10)
