"""Stream translation between the four dialects: golden files, client grammars, splits, failures.

Upstream fixtures (tests/data/translate_streams/upstream_<dialect>.sse) all tell the same
story: reasoning (with a signature where the dialect has one), a text answer, two parallel
`get_weather` calls with streamed arguments, a tool-use stop and usage with cache reads.
Expected client streams are <src>__<dst>.sse; regenerate with CCX_REGEN_GOLDEN=1 and
review the diff by hand against the providers' docs.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.dialects import Dialect
from core.sse import SSEEvent, SSEParser
from core.translate import api, common, gemini
from core.translate.streams import DataSplitter, StreamTranslator, translator

DATA = pathlib.Path(__file__).parent / "data" / "translate_streams"
CREATED = 1700000000
PAIRS = [(s, d) for s in Dialect for d in Dialect if s != d]
PAIR_IDS = [f"{s.value}->{d.value}" for s, d in PAIRS]


def upstream(src: Dialect) -> bytes:
    return (DATA / f"upstream_{src.value}.sse").read_bytes()


def translate(src: Dialect, dst: Dialect, chunks: list[bytes], **kw: Any) -> bytes:
    t = StreamTranslator(src=src, dst=dst, client_model="client-model", created=CREATED, **kw)
    return b"".join(t.feed(c) for c in chunks) + t.close()


def events(raw: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    out = parser.feed(raw)
    assert parser.close() == [], "a client stream must end on an event boundary"
    return out


def payloads(raw: bytes) -> list[tuple[str | None, Any]]:
    return [(e.event, e.data if e.data == "[DONE]" else json.loads(e.data)) for e in events(raw)]


# ------------------------------------------------------------------ what a client sees
def client_view(dst: Dialect, raw: bytes) -> dict[str, Any]:
    """Rebuild the answer the way a client of `dst` would: text, reasoning, calls, usage."""
    view: dict[str, Any] = {"text": "", "reasoning": "", "calls": [], "stop": None, "usage": None}
    calls: dict[int, dict[str, Any]] = {}
    for _name, data in payloads(raw):
        if dst is Dialect.ANTHROPIC:
            _anthropic_view(data, view, calls)
        elif dst is Dialect.OPENAI_CHAT:
            _chat_view(data, view, calls)
        elif dst is Dialect.OPENAI_RESPONSES:
            _responses_view(data, view, calls)
        else:
            _gemini_view(data, view, calls)
    view["calls"] = [
        (c["id"], c["name"], json.loads(c["args"]) if isinstance(c["args"], str) else c["args"])
        for _, c in sorted(calls.items())
    ]
    return view


def _anthropic_view(data: Any, view: dict[str, Any], calls: dict[int, dict[str, Any]]) -> None:
    if data["type"] == "content_block_start" and data["content_block"]["type"] == "tool_use":
        block = data["content_block"]
        calls[data["index"]] = {"id": block["id"], "name": block["name"], "args": ""}
    elif data["type"] == "content_block_delta":
        d = data["delta"]
        if d["type"] == "text_delta":
            view["text"] += d["text"]
        elif d["type"] == "thinking_delta":
            view["reasoning"] += d["thinking"]
        elif d["type"] == "input_json_delta":
            calls[data["index"]]["args"] += d["partial_json"]
    elif data["type"] == "message_delta":
        view["stop"] = data["delta"]["stop_reason"]
        u = data["usage"]
        total_in = (
            u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
        )
        view["usage"] = (total_in, u["output_tokens"])


def _chat_view(data: Any, view: dict[str, Any], calls: dict[int, dict[str, Any]]) -> None:
    if data == "[DONE]":
        return
    if data.get("usage"):
        view["usage"] = (data["usage"]["prompt_tokens"], data["usage"]["completion_tokens"])
    for choice in data["choices"]:
        delta = choice["delta"]
        view["text"] += delta.get("content") or ""
        view["reasoning"] += delta.get("reasoning_content") or ""
        for tc in delta.get("tool_calls") or ():
            call = calls.setdefault(tc["index"], {"id": None, "name": None, "args": ""})
            call["id"] = tc.get("id") or call["id"]
            call["name"] = (tc.get("function") or {}).get("name") or call["name"]
            call["args"] += (tc.get("function") or {}).get("arguments") or ""
        view["stop"] = choice["finish_reason"] or view["stop"]


def _responses_view(data: Any, view: dict[str, Any], calls: dict[int, dict[str, Any]]) -> None:
    kind = data["type"]
    if kind == "response.output_text.delta":
        view["text"] += data["delta"]
    elif kind == "response.reasoning_summary_text.delta":
        view["reasoning"] += data["delta"]
    elif kind == "response.output_item.added" and data["item"]["type"] == "function_call":
        item = data["item"]
        calls[data["output_index"]] = {"id": item["call_id"], "name": item["name"], "args": ""}
    elif kind == "response.function_call_arguments.delta":
        calls[data["output_index"]]["args"] += data["delta"]
    elif kind == "response.completed":
        u = data["response"]["usage"]
        view["usage"] = (u["input_tokens"], u["output_tokens"])
        has_calls = any(i["type"] == "function_call" for i in data["response"]["output"])
        view["stop"] = "tool_calls" if has_calls else "completed"


def _gemini_view(data: Any, view: dict[str, Any], calls: dict[int, dict[str, Any]]) -> None:
    cand = data["candidates"][0]
    for part in (cand.get("content") or {}).get("parts") or ():
        if "functionCall" in part:
            fc = part["functionCall"]
            calls[len(calls)] = {"id": fc.get("id"), "name": fc["name"], "args": fc["args"]}
        elif part.get("thought"):
            view["reasoning"] += part.get("text", "")
        else:
            view["text"] += part.get("text", "")
    if cand.get("finishReason"):
        view["stop"] = cand["finishReason"]
        u = data["usageMetadata"]
        view["usage"] = (
            u["promptTokenCount"],
            u["candidatesTokenCount"] + u.get("thoughtsTokenCount", 0),
        )


STOP_WORD = {
    Dialect.ANTHROPIC: "tool_use",
    Dialect.OPENAI_CHAT: "tool_calls",
    Dialect.OPENAI_RESPONSES: "tool_calls",
    Dialect.GEMINI: "STOP",
}


# ------------------------------------------------------------------ golden files
@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=PAIR_IDS)
def test_golden_stream_matches_the_reviewed_file(src: Dialect, dst: Dialect) -> None:
    got = translate(src, dst, [upstream(src)])
    path = DATA / f"{src.value}__{dst.value}.sse"
    if os.environ.get("CCX_REGEN_GOLDEN"):
        path.write_bytes(got)
    assert got == path.read_bytes()


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=PAIR_IDS)
def test_every_client_sees_the_same_answer(src: Dialect, dst: Dialect) -> None:
    view = client_view(dst, translate(src, dst, [upstream(src)]))
    assert view["text"] == "I'll check both cities ☀️."
    assert view["reasoning"] == "The user wants the weather for two cities."
    ids = [c[0] for c in view["calls"]]
    assert [c[1:] for c in view["calls"]] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "São Paulo"}),
    ]
    assert len(set(ids)) == 2 and all(ids), "tool ids are kept or synthesised, never empty"
    assert view["stop"] == STOP_WORD[dst]
    assert view["usage"] == (135, 87)


def test_tool_ids_survive_from_upstreams_that_have_them() -> None:
    view = client_view(
        Dialect.GEMINI, translate(Dialect.ANTHROPIC, Dialect.GEMINI, [upstream(Dialect.ANTHROPIC)])
    )
    assert [c[0] for c in view["calls"]] == [
        "toolu_01A09q90qw90lq917835lq9",
        "toolu_01B7xv2pqYz6rT",
    ]
    view = client_view(
        Dialect.ANTHROPIC, translate(Dialect.GEMINI, Dialect.ANTHROPIC, [upstream(Dialect.GEMINI)])
    )
    ids = [common.split_signature(c[0]) for c in view["calls"]]
    # Gemini gave no ids; the first call's thoughtSignature rides in its id.
    assert ids == [("call_0", "CpwBAdHtim9+/sig"), ("call_1", None)]


def test_thinking_signatures_reach_clients_tagged_with_their_family() -> None:
    """Stream encoders follow the body rules: a foreign token is tagged for the client."""
    anthropic_to_gemini = payloads(
        translate(Dialect.ANTHROPIC, Dialect.GEMINI, [upstream(Dialect.ANTHROPIC)])
    )
    sigs = [
        gemini.read_signature(p["thoughtSignature"])
        for _, d in anthropic_to_gemini
        for p in (d["candidates"][0].get("content") or {}).get("parts", ())
        if "thoughtSignature" in p
    ]
    assert sigs == ["ccx:anthropic:EqQBCkYIARgCIkDsig+/Zw=="]
    responses_to_anthropic = payloads(
        translate(Dialect.OPENAI_RESPONSES, Dialect.ANTHROPIC, [upstream(Dialect.OPENAI_RESPONSES)])
    )
    deltas = [d["delta"] for _, d in responses_to_anthropic if d["type"] == "content_block_delta"]
    # encrypted_content after visible thinking signs that thinking block, as bodies do
    assert {"type": "signature_delta", "signature": "ccx:openai:gAAAAABoENC="} in deltas
    gemini_to_anthropic = payloads(
        translate(Dialect.GEMINI, Dialect.ANTHROPIC, [upstream(Dialect.GEMINI)])
    )
    deltas = [d["delta"] for _, d in gemini_to_anthropic if d["type"] == "content_block_delta"]
    assert not [d for d in deltas if d["type"] == "signature_delta"], "call signatures ride in ids"


# ------------------------------------------------------------------ replay across turns
def anthropic_message(raw: bytes) -> dict[str, Any]:
    """The assistant message an Anthropic SDK accumulates from a stream."""
    blocks: dict[int, dict[str, Any]] = {}
    for _, d in payloads(raw):
        if d["type"] == "content_block_start":
            blocks[d["index"]] = dict(d["content_block"]) | {"_json": ""}
        elif d["type"] == "content_block_delta":
            block, delta = blocks[d["index"]], d["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                block["_json"] += delta["partial_json"]
    content = []
    for _, block in sorted(blocks.items()):
        partial = block.pop("_json")
        if block["type"] == "tool_use":
            block["input"] = json.loads(partial or "{}")
        content.append(block)
    return {"role": "assistant", "content": content}


def chat_message(raw: bytes) -> dict[str, Any]:
    """The assistant message an OpenAI chat client accumulates from a stream."""
    calls: dict[int, dict[str, Any]] = {}
    text = ""
    for _, d in payloads(raw):
        if d == "[DONE]":
            continue
        for choice in d["choices"]:
            text += choice["delta"].get("content") or ""
            for tc in choice["delta"].get("tool_calls") or ():
                call = calls.setdefault(
                    tc["index"], {"type": "function", "function": {"arguments": ""}}
                )
                call["id"] = tc.get("id") or call.get("id")
                call["function"]["name"] = tc.get("function", {}).get("name") or call[
                    "function"
                ].get("name")
                call["function"]["arguments"] += tc.get("function", {}).get("arguments") or ""
    return {
        "role": "assistant",
        "content": text,
        "tool_calls": [c for _, c in sorted(calls.items())],
    }


def responses_output(raw: bytes) -> list[dict[str, Any]]:
    """The output items a Responses client keeps (Codex replays them as `input`)."""
    done = [d for _, d in payloads(raw) if d["type"] == "response.completed"]
    return list(done[0]["response"]["output"])


GEMINI3_UPSTREAM = (
    b'data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Need the file.",'
    b'"thought":true,"thoughtSignature":"VGhvdWdodFNpZw=="}]},"index":0}],'
    b'"modelVersion":"gemini-3-pro-preview","responseId":"r3"}\n\n'
    b'data: {"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"read_file",'
    b'"args":{"path":"a.py"}},"thoughtSignature":"Q2FsbFNpZw=="},{"functionCall":{"name":"read_file",'
    b'"args":{"path":"b.py"}}}]},"finishReason":"STOP","index":0}],"usageMetadata":'
    b'{"promptTokenCount":10,"candidatesTokenCount":5,"totalTokenCount":15},'
    b'"modelVersion":"gemini-3-pro-preview","responseId":"r3"}\n\n'
)


def _next_turn_to_gemini(client: Dialect, raw: bytes) -> dict[str, Any]:
    """Feed the streaming client's view back as its next request, bound for Gemini 3."""
    body: dict[str, Any]
    if client is Dialect.ANTHROPIC:
        msg = anthropic_message(raw)
        results = [
            {"type": "tool_result", "tool_use_id": b["id"], "content": "print(1)"}
            for b in msg["content"]
            if b["type"] == "tool_use"
        ]
        body = {
            "model": "claude",
            "max_tokens": 1000,
            "messages": [
                {"role": "user", "content": "read a.py and b.py"},
                msg,
                {"role": "user", "content": results},
            ],
        }
    elif client is Dialect.OPENAI_CHAT:
        msg = chat_message(raw)
        results = [
            {"role": "tool", "tool_call_id": c["id"], "content": "print(1)"}
            for c in msg["tool_calls"]
        ]
        body = {"model": "gpt", "messages": [{"role": "user", "content": "read"}, msg, *results]}
    else:
        items = responses_output(raw)
        results = [
            {"type": "function_call_output", "call_id": i["call_id"], "output": "print(1)"}
            for i in items
            if i["type"] == "function_call"
        ]
        body = {"model": "gpt", "input": [{"role": "user", "content": "read"}]}
        body["input"] += items + results
    return api.translate_request(
        body, src=client, dst=Dialect.GEMINI, model="gemini-3-pro-preview", client_model="c"
    )


@pytest.mark.parametrize(
    "client", [Dialect.ANTHROPIC, Dialect.OPENAI_CHAT, Dialect.OPENAI_RESPONSES], ids=str
)
def test_a_gemini3_tool_loop_keeps_its_signatures_through_a_streaming_client(
    client: Dialect,
) -> None:
    raw = translate(Dialect.GEMINI, client, [GEMINI3_UPSTREAM])
    out = _next_turn_to_gemini(client, raw)
    model_turn = out["contents"][1]
    assert model_turn["role"] == "model"
    calls = [p for p in model_turn["parts"] if "functionCall" in p]
    assert [c["functionCall"]["id"] for c in calls] == ["call_0", "call_1"]
    assert calls[0]["thoughtSignature"] == "Q2FsbFNpZw=="  # Gemini's own, raw
    assert "thoughtSignature" not in calls[1]  # only the first call of a step is signed
    results = [p["functionResponse"] for p in out["contents"][2]["parts"]]
    assert [(r["id"], r["name"]) for r in results] == [
        ("call_0", "read_file"),
        ("call_1", "read_file"),
    ]
    thoughts = [p for p in model_turn["parts"] if p.get("thought")]
    if client is Dialect.OPENAI_CHAT:
        assert thoughts == []  # Chat has no reasoning field: the thought is not replayed
    else:
        assert thoughts == [
            {"thought": True, "text": "Need the file.", "thoughtSignature": "VGhvdWdodFNpZw=="}
        ]


def test_streamed_reasoning_replays_to_its_own_family_only() -> None:
    """OpenAI encrypted_content streamed to an Anthropic client goes back to OpenAI only."""
    raw = translate(
        Dialect.OPENAI_RESPONSES, Dialect.ANTHROPIC, [upstream(Dialect.OPENAI_RESPONSES)]
    )
    msg = anthropic_message(raw)
    body = {"model": "c", "max_tokens": 100, "messages": [{"role": "user", "content": "w"}, msg]}
    to_openai = api.translate_request(
        body, src=Dialect.ANTHROPIC, dst=Dialect.OPENAI_RESPONSES, model="gpt-5", client_model="c"
    )
    reasoning = [i for i in to_openai["input"] if i["type"] == "reasoning"]
    assert [r["encrypted_content"] for r in reasoning] == ["gAAAAABoENC="]
    to_anthropic = api.translate_request(
        {**body, "model": "x"},
        src=Dialect.ANTHROPIC,
        dst=Dialect.ANTHROPIC,
        model="claude",
        client_model="c",
    )
    kinds = [b["type"] for b in to_anthropic["messages"][1]["content"]]
    assert "thinking" not in kinds and "redacted_thinking" not in kinds


# ------------------------------------------------------------------ client grammars
def _adapters() -> dict[Dialect, pydantic.TypeAdapter[Any]]:
    from anthropic.types import RawMessageStreamEvent
    from google.genai import types as gtypes
    from openai.types.chat import ChatCompletionChunk
    from openai.types.responses import ResponseStreamEvent

    return {
        Dialect.ANTHROPIC: pydantic.TypeAdapter(RawMessageStreamEvent),
        Dialect.OPENAI_CHAT: pydantic.TypeAdapter(ChatCompletionChunk),
        Dialect.OPENAI_RESPONSES: pydantic.TypeAdapter(ResponseStreamEvent),
        Dialect.GEMINI: pydantic.TypeAdapter(gtypes.GenerateContentResponse),
    }


ADAPTERS = _adapters()


def assert_client_grammar(dst: Dialect, raw: bytes) -> None:
    """Every event parses with core.sse, its JSON is valid and matches the official SDK type."""
    evs = events(raw)
    assert evs
    for i, ev in enumerate(evs):
        if ev.data == "[DONE]":
            assert dst is Dialect.OPENAI_CHAT and i == len(evs) - 1
            continue
        data = json.loads(ev.data)
        if "error" in data and dst in (Dialect.OPENAI_CHAT, Dialect.GEMINI, Dialect.ANTHROPIC):
            assert data["error"]["message"], "an error event the SDKs raise on"
            assert dst is not Dialect.ANTHROPIC or ev.event == data["type"] == "error"
            continue
        if dst is Dialect.ANTHROPIC:
            assert ev.event == data["type"], "Anthropic events carry an event: line"
        if dst is Dialect.OPENAI_RESPONSES:
            assert ev.event == data["type"]
            assert data["sequence_number"] == i, "sequence numbers count from 0 with no gaps"
        ADAPTERS[dst].validate_python(data)


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=PAIR_IDS)
def test_client_streams_follow_the_official_grammar(src: Dialect, dst: Dialect) -> None:
    raw = translate(src, dst, [upstream(src)])
    assert_client_grammar(dst, raw)
    names = [e.event or json.loads(e.data).get("type") for e in events(raw) if e.data != "[DONE]"]
    if dst is Dialect.ANTHROPIC:
        assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    if dst is Dialect.OPENAI_RESPONSES:
        assert names[:2] == ["response.created", "response.in_progress"]
        assert names[-1] == "response.completed"


def test_openai_chat_clients_get_usage_only_when_they_asked() -> None:
    src = Dialect.ANTHROPIC
    with_usage = payloads(translate(src, Dialect.OPENAI_CHAT, [upstream(src)]))
    without = payloads(translate(src, Dialect.OPENAI_CHAT, [upstream(src)], include_usage=False))
    assert with_usage[-2][1]["choices"] == [] and with_usage[-2][1]["usage"]["prompt_tokens"] == 135
    assert all(d == "[DONE]" or "usage" not in d for _, d in without)
    assert without[-1][1] == "[DONE]"


def test_usage_is_reported_for_logs() -> None:
    t = translator(Dialect.ANTHROPIC, Dialect.OPENAI_CHAT, "m")
    t.feed(upstream(Dialect.ANTHROPIC))
    assert (t.usage.input_tokens, t.usage.output_tokens) == (135, 87)
    assert (t.usage.cache_read_tokens, t.usage.cache_write_tokens) == (100, 10)


# ------------------------------------------------------------------ splits
@settings(max_examples=60, deadline=None)
@given(
    pair=st.sampled_from(PAIRS),
    cuts=st.lists(st.integers(min_value=0, max_value=8000), max_size=40),
)
def test_random_byte_splits_give_the_same_client_events(
    pair: tuple[Dialect, Dialect], cuts: list[int]
) -> None:
    src, dst = pair
    raw = upstream(src)
    points = sorted({c % (len(raw) + 1) for c in cuts})
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    assert payloads(translate(src, dst, chunks)) == payloads(translate(src, dst, [raw]))


# ------------------------------------------------------------------ failures
CLEAN_END = {
    Dialect.ANTHROPIC: b"message_stop",
    Dialect.OPENAI_CHAT: b"[DONE]",
    Dialect.OPENAI_RESPONSES: b"response.completed",
    Dialect.GEMINI: b"finishReason",
}


def assert_ends_in_error(dst: Dialect, raw: bytes) -> Any:
    assert CLEAN_END[dst] not in raw, "a broken stream must never look finished"
    assert_client_grammar(dst, raw)
    last = events(raw)[-1]
    data = json.loads(last.data)
    if dst is Dialect.ANTHROPIC:
        assert last.event == "error" and data["type"] == "error"
        return data["error"]["type"]
    if dst is Dialect.OPENAI_RESPONSES:
        assert last.event == "response.failed" and events(raw)[-2].event == "error"
        return json.loads(events(raw)[-2].data)["code"]
    if dst is Dialect.OPENAI_CHAT:
        return data["error"]["type"]
    return data["error"]["status"]


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=PAIR_IDS)
def test_a_stream_that_ends_early_gives_the_client_error_event(src: Dialect, dst: Dialect) -> None:
    raw = upstream(src)
    t = StreamTranslator(src=src, dst=dst, client_model="m", created=CREATED)
    out = t.feed(raw[: len(raw) * 2 // 3]) + t.close()
    assert t.started_content
    assert t.error is not None and t.error.kind == "upstream"
    assert "ended early" in t.error.message
    assert_ends_in_error(dst, out)
    assert t.feed(raw[len(raw) * 2 // 3 :]) == b"" and t.close() == b"", "spent after an error"


OVERLOADED = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","model":"claude","content":[],"stop_reason":null,"stop_sequence":null,'
    b'"usage":{"input_tokens":12,"output_tokens":1}}}\n\n'
    b'event: ping\ndata: {"type": "ping"}\n\n'
    b'event: error\ndata: {"type":"error",'
    b'"error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
)
OVERLOADED_NAME = {
    Dialect.OPENAI_CHAT: "server_error",
    Dialect.OPENAI_RESPONSES: "server_is_overloaded",
    Dialect.GEMINI: "UNAVAILABLE",
}


@pytest.mark.parametrize("dst", [d for d in Dialect if d is not Dialect.ANTHROPIC])
def test_overloaded_before_content_lets_the_proxy_fail_over(dst: Dialect) -> None:
    t = translator(Dialect.ANTHROPIC, dst, "m")
    out = t.feed(OVERLOADED)
    assert t.error is not None and t.error.kind == "overloaded"
    assert t.error.message == "Overloaded"
    assert not t.started_content, "nothing reached the client yet: the proxy may fail over"
    assert assert_ends_in_error(dst, out) == OVERLOADED_NAME[dst]
    assert t.close() == b""


@pytest.mark.parametrize("src", [d for d in Dialect if d is not Dialect.ANTHROPIC])
def test_upstream_error_events_of_each_dialect_are_recognised(src: Dialect) -> None:
    body = {
        Dialect.OPENAI_CHAT: b'data: {"error":{"message":"slow down","type":"requests",'
        b'"code":"rate_limit_exceeded"}}\n\n',
        Dialect.OPENAI_RESPONSES: b'event: error\ndata: {"type":"error",'
        b'"code":"rate_limit_exceeded",'
        b'"message":"slow down","param":null,"sequence_number":0}\n\n',
        Dialect.GEMINI: b'data: {"error":{"code":429,"message":"slow down",'
        b'"status":"RESOURCE_EXHAUSTED"}}\n\n',
    }[src]
    t = translator(src, Dialect.ANTHROPIC, "m")
    out = t.feed(body)
    assert t.error is not None and (t.error.kind, t.error.message) == ("rate_limited", "slow down")
    assert assert_ends_in_error(Dialect.ANTHROPIC, out) == "rate_limit_error"


@pytest.mark.parametrize("dst", list(Dialect))
def test_a_proxy_side_failure_mid_stream_ends_with_the_client_error(dst: Dialect) -> None:
    src = Dialect.OPENAI_CHAT if dst is Dialect.ANTHROPIC else Dialect.ANTHROPIC
    raw = upstream(src)
    t = StreamTranslator(src=src, dst=dst, client_model="m", created=CREATED)
    out = t.feed(raw[: len(raw) // 2])
    out += t.fail("upstream_timeout", "upstream idle for 60 s")
    assert t.error is None, "a proxy-side failure is not an upstream error event"
    assert assert_ends_in_error(dst, out)
    assert t.feed(raw[len(raw) // 2 :]) == b"" and t.close() == b"" and t.fail("x", "y") == b""


def test_a_finished_stream_is_not_failed_afterwards() -> None:
    t = translator(Dialect.GEMINI, Dialect.ANTHROPIC, "m")
    out = t.feed(upstream(Dialect.GEMINI)) + t.close()
    assert out.endswith(b'data: {"type":"message_stop"}\n\n')
    assert t.fail("upstream", "late") == b"" and t.error is None


def test_openai_chat_without_done_after_finish_reason_still_ends_cleanly() -> None:
    raw = upstream(Dialect.OPENAI_CHAT)
    cut = raw.rindex(b"data: [DONE]")
    out = translate(Dialect.OPENAI_CHAT, Dialect.ANTHROPIC, [raw[:cut]])
    assert out.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


def _anthropic_text_stream(stop_reason: str) -> bytes:
    raw = upstream(Dialect.ANTHROPIC).decode()
    head = raw[: raw.index("event: content_block_start")]
    text = (
        'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        '"content_block":{"type":"text","text":""}}\n\n'
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        '"delta":{"type":"text_delta","text":"Once upon a"}}\n\n'
        'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
        'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
        f'"{stop_reason}","stop_sequence":null}},"usage":{{"output_tokens":3}}}}\n\n'
        'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    return (head + text).encode()


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        (
            "end_turn",
            {"openai": "stop", "openai-responses": "response.completed", "gemini": "STOP"},
        ),
        (
            "max_tokens",
            {"openai": "length", "openai-responses": "response.incomplete", "gemini": "MAX_TOKENS"},
        ),
    ],
)
def test_stop_reasons_map_to_each_client(stop_reason: str, expected: dict[str, str]) -> None:
    raw = _anthropic_text_stream(stop_reason)
    for dst in (Dialect.OPENAI_CHAT, Dialect.OPENAI_RESPONSES, Dialect.GEMINI):
        out = translate(Dialect.ANTHROPIC, dst, [raw])
        assert_client_grammar(dst, out)
        last = [d for _, d in payloads(out) if d != "[DONE]"]
        if dst is Dialect.OPENAI_CHAT:
            got = last[-2]["choices"][0]["finish_reason"]
        elif dst is Dialect.OPENAI_RESPONSES:
            got = last[-1]["type"]
        else:
            got = last[-1]["candidates"][0]["finishReason"]
        assert got == expected[dst.value], dst


def test_chat_upstreams_that_reuse_tool_index_zero_still_give_two_calls() -> None:
    head = '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"g",'

    def chunk(delta: str, finish: str = "null") -> str:
        choice = f'{{"index":0,"delta":{delta},"finish_reason":{finish}}}'
        return f'data: {head}"choices":[{choice}]}}\n\n'

    calls = [
        '{"tool_calls":[{"index":0,"id":"call_a","type":"function",'
        '"function":{"name":"f","arguments":"{\\"x\\":1}"}}]}',
        '{"tool_calls":[{"index":0,"id":"call_b","type":"function",'
        '"function":{"name":"g","arguments":"{\\"y\\":2}"}}]}',
    ]
    raw = chunk('{"role":"assistant"}') + "".join(chunk(c) for c in calls)
    raw += chunk("{}", '"tool_calls"') + "data: [DONE]\n\n"
    out = translate(Dialect.OPENAI_CHAT, Dialect.ANTHROPIC, [raw.encode()])
    view = client_view(Dialect.ANTHROPIC, out)
    assert view["calls"] == [("call_a", "f", {"x": 1}), ("call_b", "g", {"y": 2})]


# ------------------------------------------------------------------ the fast lane and splitter
def generic_only(src: Dialect, dst: Dialect, chunks: list[bytes]) -> bytes:
    """The same translation with the fast lane shut: every event takes the canonical path."""
    t = StreamTranslator(src=src, dst=dst, client_model="client-model", created=CREATED)
    t._fast = lambda data: None  # the lane is an optimisation only
    return b"".join(t.feed(c) for c in chunks) + t.close()


def compact(raw: bytes) -> bytes:
    """The fixture re-serialised compactly, as OpenAI and Anthropic send it."""
    out = []
    for e in events(raw):
        data = (
            e.data if e.data == "[DONE]" else json.dumps(json.loads(e.data), separators=(",", ":"))
        )
        out.append((f"event: {e.event}\n" if e.event else "") + f"data: {data}\n\n")
    return "".join(out).encode()


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=PAIR_IDS)
def test_the_fast_lane_writes_what_the_canonical_path_writes(src: Dialect, dst: Dialect) -> None:
    from bench.payloads import Kind, stream_script

    bench_text = stream_script(Kind(src.value), 20).body()
    for raw in (upstream(src), compact(upstream(src)), bench_text):
        per_event = [e + b"\n\n" for e in raw.replace(b"\r\n", b"\n").split(b"\n\n") if e]
        fast = translate(src, dst, per_event)
        assert fast == generic_only(src, dst, per_event)
        assert fast == translate(src, dst, [raw])


def test_chat_chunks_that_also_carry_usage_or_extra_fields_leave_the_fast_lane() -> None:
    head = '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"g",'

    def chunk(choice: str, more: str = "") -> bytes:
        return f'data: {head}"choices":[{choice}]{more}}}\n\n'.encode()

    text = '{"index":0,"delta":{"content":"%s"},"finish_reason":null}'
    raw = [
        chunk('{"index":0,"delta":{"role":"assistant"},"finish_reason":null}'),
        chunk(text % "Hel"),
        chunk(text % "lo", ',"usage":{"prompt_tokens":7,"completion_tokens":2}'),
        chunk('{"index":0,"delta":{"content":" you","role":"x"},"finish_reason":null}'),
        chunk('{"index":0,"delta":{"content":"!"},"finish_reason":"stop"}'),
        b"data: [DONE]\n\n",
    ]
    out = translate(Dialect.OPENAI_CHAT, Dialect.ANTHROPIC, raw)
    assert out == generic_only(Dialect.OPENAI_CHAT, Dialect.ANTHROPIC, raw)
    view = client_view(Dialect.ANTHROPIC, out)
    assert view["text"] == "Hello you!"
    assert view["usage"] == (7, 2), "usage riding on a content chunk is not lost"


def test_gemini_usage_from_the_last_text_chunk_reaches_the_finish() -> None:
    def chunk(text: str, out_tokens: int, finish: str = "") -> bytes:
        cand = f'{{"content":{{"parts":[{{"text":"{text}"}}],"role":"model"}}{finish},"index":0}}'
        usage = f'{{"promptTokenCount":5,"candidatesTokenCount":{out_tokens}}}'
        return f'data: {{"candidates":[{cand}],"usageMetadata":{usage}}}\r\n\r\n'.encode()

    final = b'data: {"candidates":[{"finishReason":"STOP","index":0}]}\r\n\r\n'
    raw = [chunk("a", 1), chunk("b", 2), chunk("c", 3), final]
    out = translate(Dialect.GEMINI, Dialect.OPENAI_CHAT, raw)
    assert out == generic_only(Dialect.GEMINI, Dialect.OPENAI_CHAT, raw)
    assert client_view(Dialect.OPENAI_CHAT, out)["usage"] == (5, 3)


SSE_TRICKS = (
    b": a comment\n\nevent: x\ndata: one\ndata: two\n\nid: 7\nretry: 10\n\n"
    b"data:no-space\r\n\r\ndata: cr only\r\rdata: caf\xc3\xa9 \xe2\x98\x80\n\n\n\ndata: [DONE]\n\n"
)


@settings(max_examples=80, deadline=None)
@given(
    raw=st.sampled_from([SSE_TRICKS, *(upstream(d) for d in Dialect)]),
    cuts=st.lists(st.integers(min_value=0, max_value=8000), max_size=30),
)
def test_the_translators_splitter_finds_the_events_core_sse_finds(
    raw: bytes, cuts: list[int]
) -> None:
    points = sorted({c % (len(raw) + 1) for c in cuts})
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    splitter, parser = DataSplitter(), SSEParser()
    ours = [d for c in chunks for d in splitter.feed(c)] + splitter.close()
    theirs = [e.data for c in chunks for e in parser.feed(c)] + [e.data for e in parser.close()]
    assert ours == theirs
