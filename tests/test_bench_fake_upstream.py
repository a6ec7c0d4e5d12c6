"""The bench's fake upstream speaks each dialect well-formed, and the load generator counts it.

The fake runs in-process on 127.0.0.1 (a port picked by the kernel); answers are parsed
with httpx, core.sse and json, as a proxy would. The floor relay (bench/floor.py) pipes
keep-alive traffic to it unchanged, and the report's medians and floor column are checked
on made-up rounds.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from bench.fake_upstream import Counters, Fault, FaultKind, Settings, make_listener, serve
from bench.floor import serve_floor
from bench.loadgen import LoadResult, LoadSpec, run_load
from bench.nginx import nginx_config, start_nginx
from bench.payloads import Kind, build_request, request_body, request_path
from bench.procs import Cores, StartError
from bench.report import (
    Report,
    cpu_rows,
    per_event_values,
    reference_lines,
    render,
    unpaced_event_cpu,
)
from bench.run import Phase, Suite
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


# ---------------------------------------------------------------- the floor relay


@asynccontextmanager
async def floor_in_front_of(upstream_port: int) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        yield await nursery.start(serve_floor, make_listener(0), upstream_port)
        nursery.cancel_scope.cancel()


async def test_the_floor_pipes_keep_alive_requests_one_upstream_connection_per_client() -> None:
    async with (
        fake(Settings(events=5)) as (_, counters, upstream),
        floor_in_front_of(upstream) as port,
    ):
        request = build_request(Kind.ANTHROPIC, host="127.0.0.1", port=port, stream=True)
        spec = LoadSpec(
            port=port, request=request, clients=3, requests=30, stream=True, expect=b"message_stop"
        )
        result = await run_load(spec)
    assert (result.completed, result.failed) == (30, 0)
    assert counters.requests == 30
    assert counters.connections == 3  # the relay kept each client's upstream connection


async def test_the_floor_passes_an_upstream_close_through_to_the_client() -> None:
    settings = Settings(events=6, faults=(Fault(kind=FaultKind.CLOSE, share=1.0),))
    async with (
        fake(settings) as (_, _, upstream),
        floor_in_front_of(upstream) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await post(client, Kind.ANTHROPIC, "m", stream=True)


# ---------------------------------------------------------------- the report


def _phase(completed: int, cpu: float | None, latency: float = 0.001) -> Phase:
    result = LoadResult(completed=completed, latencies=[latency] * completed, wall=1.0)
    return Phase(result=result, server_cpu=cpu)


def _report(same: Suite, floor: Suite) -> Report:
    return Report(
        date="today", machine="test", profile="quick", rounds=3,
        cores=Cores(proxy=frozenset({0}), harness=frozenset({1})), events_per_stream=56,
        open_events=26, open_deltas=20, slow_deltas=0, slow_delay=0.1,
        direct=Suite(phases={"many": [_phase(100, None)] * 3}), same=same, floor=floor,
        cross=Suite(), nginx=Suite(),
    )  # fmt: skip


def test_the_report_takes_the_median_round_and_sets_the_proxy_against_the_floor() -> None:
    # Three rounds of 100 requests: 0.4, 0.9 (a noisy round) and 0.5 ms CPU per request.
    same = Suite(phases={"many": [_phase(100, 0.04), _phase(100, 0.09), _phase(100, 0.05)]})
    floor = Suite(phases={"many": [_phase(100, 0.01), _phase(100, 0.012), _phase(100, 0.011)]})
    row = next(w for w in cpu_rows(_report(same, floor)) if w.figure.startswith("CPU per request"))
    assert row.proxy == "0.500 ms [0.400-0.900]"
    assert row.floor == "0.110 ms [0.100-0.120]"
    assert row.vs_floor == "4.55 x (+0.390 ms)"
    assert row.verdict == "ok"  # the median meets 0.5 ms; the noisy round alone would not


def test_the_per_event_cost_discounts_a_plain_request_per_stream() -> None:
    # 10 paced streams of 26 events; the process spends 0.5 ms per plain request.
    same = Suite(
        phases={"many": [_phase(100, 0.05)], "open": [_phase(10, 0.005 + 10 * 26 * 100e-6)]}
    )
    floor = Suite(
        phases={"many": [_phase(100, 0.01)], "open": [_phase(10, 0.001 + 10 * 26 * 100e-6)]}
    )
    assert per_event_values(same, 26) == pytest.approx([100e-6])
    rendered = render(_report(same, floor))
    assert "| 100.0 us | 100.0 us |" in rendered  # floor and proxy cells of the event row
    assert "1.00 x (+0.0 us)" in rendered


def test_the_reference_per_event_cost_is_a_stream_beyond_a_plain_request() -> None:
    # 0.5 ms per plain request, 0.78 ms per 56-event unpaced stream: 5 us per event.
    same = Suite(phases={"many": [_phase(100, 0.05)], "many_stream": [_phase(100, 0.078)]})
    floor = Suite(phases={"many": [_phase(100, 0.01)], "many_stream": [_phase(100, 0.0128)]})
    assert unpaced_event_cpu(same, 56) == pytest.approx(5e-6)
    row = next(w for w in cpu_rows(_report(same, floor)) if "reference" in w.figure)
    assert (row.proxy, row.floor, row.verdict) == ("5.0 us", "0.5 us", "ok")


def test_the_nginx_reference_is_paired_with_direct_and_set_against_the_proxy() -> None:
    # Per round (direct, nginx, proxy) p50: (0.20, 0.40, 0.60), (0.30, 0.45, 0.75), (0.25, 0.50, 0.70)
    rounds = [(0.20, 0.40, 0.60), (0.30, 0.45, 0.75), (0.25, 0.50, 0.70)]
    direct, nx, same = ([_phase(10, None, r[i] / 1000) for r in rounds] for i in range(3))
    report = dataclasses.replace(
        _report(Suite(phases={"single": same}), Suite()),
        direct=Suite(phases={"single": direct}),
        nginx=Suite(phases={"single": nx}, rss_idle=3.0),
        nginx_version="nginx/1.22.1",
    )
    lines = reference_lines(report)
    assert "nginx/1.22.1" in lines[1]
    p50 = next(line for line in lines if line.startswith("| latency p50"))
    # medians 0.25 / 0.45 / 0.70; nginx - direct per round 0.20, 0.15, 0.25; proxy - nginx
    # per round 0.20, 0.30, 0.20
    assert p50 == (
        "| latency p50, 1 client, non-stream | 0.250 ms | 0.450 ms | 0.700 ms "
        "| +0.200 ms | +0.200 ms |"
    )
    assert "| RSS idle (after start) |  | 3.0 MB | n/a |  |  |" in lines
    assert "Reference relay" in render(report)


def test_without_nginx_the_reference_is_left_out_and_the_reason_shown() -> None:
    report = _report(Suite(), Suite())
    assert reference_lines(report) == []
    missing = dataclasses.replace(report, nginx=Suite(error="no nginx binary on PATH"))
    rendered = render(missing)
    assert "Reference relay" not in rendered
    assert "The nginx reference: not measured" in rendered
    assert "no nginx binary on PATH" in rendered


def test_starting_nginx_from_a_missing_binary_is_a_start_error(tmp_path: Path) -> None:
    with pytest.raises(StartError, match="could not start"):
        start_nginx(tmp_path, None, 9, binary=str(tmp_path / "no-such-nginx"))


def test_the_nginx_config_is_a_keep_alive_unbuffered_proxy_on_loopback(tmp_path: Path) -> None:
    text = nginx_config(8123, 9100, tmp_path)
    assert "listen 127.0.0.1:8123;" in text
    assert "server 127.0.0.1:9100; keepalive" in text
    assert "proxy_http_version 1.1;" in text and 'proxy_set_header Connection "";' in text
    assert "proxy_buffering off;" in text and "master_process off;" in text
    assert str(tmp_path) in text  # pid, logs and temp files stay in the bench's folder
