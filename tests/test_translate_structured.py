"""Structured output (JSON mode and JSON schemas) translates between every directed pair.

Client shapes: Chat `response_format`, Responses `text.format`, Gemini `responseMimeType` +
`responseJsonSchema`/`responseSchema`, Anthropic `output_config.format`. Anthropic upstreams
get the forced-tool fallback (`ccx_json_response`), whose call comes back to the client as
the answer's JSON text. Goldens: tests/data/translate/golden/request.structured.*,
request.json_mode.* and response.structured.*, generated with CCX_UPDATE_GOLDEN=1 and
reviewed against the provider docs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.dialects import Dialect
from core.errors import BadRequest
from core.translate import anthropic_json, api, streams
from core.translate import canonical as c
from tests.test_translate_bodies import (
    PAIRS,
    check_golden,
    conversations,
    load,
    normalise,
    through,
    translated_or_error,
)

JSON_MODE_CLIENTS = [Dialect.OPENAI_CHAT, Dialect.OPENAI_RESPONSES, Dialect.GEMINI]
JSON_MODE_PAIRS = [(s, d) for s, d in PAIRS if s in JSON_MODE_CLIENTS]
CLASSIFIER = {"reasoning": "One listing command: low complexity.", "model_choice": "flash"}


def translate(body: dict[str, Any], src: Dialect, dst: Dialect) -> dict[str, Any]:
    return api.translate_request(body, src=src, dst=dst, model="up-model", client_model="cm")


def answer_text(body: dict[str, Any], dialect: Dialect) -> str:
    """The text of a client-dialect response body."""
    if dialect is Dialect.ANTHROPIC:
        return "".join(b["text"] for b in body["content"] if b["type"] == "text")
    if dialect is Dialect.OPENAI_CHAT:
        return str(body["choices"][0]["message"]["content"])
    if dialect is Dialect.OPENAI_RESPONSES:
        return "".join(p["text"] for item in body["output"] for p in item.get("content", []))
    return "".join(p.get("text", "") for p in body["candidates"][0]["content"]["parts"])


# ---------------------------------------------------------------- goldens
@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=[f"{s}-to-{d}" for s, d in PAIRS])
def test_json_schema_request_goldens(src: Dialect, dst: Dialect) -> None:
    body = load(f"input/request.structured.{src}.json")
    out = translated_or_error(translate, body=body, src=src, dst=dst)
    check_golden(f"request.structured.{src}--{dst}.json", out)


@pytest.mark.parametrize(
    ("src", "dst"), JSON_MODE_PAIRS, ids=[f"{s}-to-{d}" for s, d in JSON_MODE_PAIRS]
)
def test_json_mode_request_goldens(src: Dialect, dst: Dialect) -> None:
    body = load(f"input/request.json_mode.{src}.json")
    check_golden(f"request.json_mode.{src}--{dst}.json", translate(body, src, dst))


@pytest.mark.parametrize("dst", [d for d in Dialect if d is not Dialect.ANTHROPIC])
def test_anthropic_forced_tool_answer_goldens(dst: Dialect) -> None:
    body = load("input/response.structured.anthropic.json")
    out = api.translate_response(body, src=Dialect.ANTHROPIC, dst=dst, client_model="cm")
    check_golden(f"response.structured.anthropic--{dst}.json", out)


# ---------------------------------------------------------------- the stories behind them
def test_gemini_cli_classifier_is_served_by_an_openai_upstream() -> None:
    """The bug report: Gemini CLI's router got a 400 from an OpenAI upstream."""
    out = translate(
        load("input/request.structured.gemini.json"), Dialect.GEMINI, Dialect.OPENAI_CHAT
    )
    fmt = out["response_format"]
    assert fmt["type"] == "json_schema"
    schema = fmt["json_schema"]["schema"]
    assert schema["type"] == "object"  # google-genai's "OBJECT" lowered
    assert schema["properties"]["model_choice"] == {"type": "string", "enum": ["flash", "pro"]}
    assert fmt["json_schema"]["name"] == "response"  # OpenAI requires one; Gemini has none
    assert "strict" not in fmt["json_schema"]  # Gemini never promised strict-mode schemas
    upstream = {
        "id": "chatcmpl-1",
        "model": "gpt-5",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": json.dumps(CLASSIFIER)},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 300, "completion_tokens": 20},
    }
    served = api.translate_response(
        upstream, src=Dialect.OPENAI_CHAT, dst=Dialect.GEMINI, client_model="gemini-2.5-flash"
    )
    assert json.loads(answer_text(served, Dialect.GEMINI)) == CLASSIFIER
    assert served["candidates"][0]["finishReason"] == "STOP"


def test_openapi_response_schema_reads_as_json_schema() -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generation_config": {
            "response_mime_type": "application/json",
            "response_schema": {
                "type": "ARRAY",
                "items": {
                    "type": "OBJECT",
                    "properties": {"name": {"type": "STRING", "nullable": True}},
                    "property_ordering": ["name"],
                },
            },
        },
    }
    req = api.read_request(body, Dialect.GEMINI)
    assert req.response_format == c.ResponseFormat(
        kind="json_schema",
        schema={
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": ["string", "null"]}},
                "propertyOrdering": ["name"],
            },
        },
    )


def test_gemini_upstream_gets_its_schema_subset_in_response_json_schema() -> None:
    body = load("input/request.structured.openai.json")
    schema = body["response_format"]["json_schema"]["schema"]
    schema["properties"]["title"] |= {"format": "uri", "$comment": "dropped"}
    out = translate(body, Dialect.OPENAI_CHAT, Dialect.GEMINI)
    gen = out["generationConfig"]
    assert gen["responseMimeType"] == "application/json"
    assert gen["responseJsonSchema"]["properties"]["title"] == {"type": "string"}
    assert "responseSchema" not in gen


def test_anthropic_fallback_round_trip_for_every_client() -> None:
    """Request: the schema becomes a forced tool. Response: its call is the JSON answer,
    and the turn ends normally (it was the only call)."""
    for src in JSON_MODE_CLIENTS:
        out = translate(load(f"input/request.structured.{src}.json"), src, Dialect.ANTHROPIC)
        assert out["tool_choice"] == {"type": "tool", "name": anthropic_json.JSON_TOOL}
        (tool,) = out["tools"]
        assert tool["name"] == anthropic_json.JSON_TOOL
        assert tool["input_schema"]["required"] == (
            ["reasoning", "model_choice"]
            if src is Dialect.GEMINI
            else ["title", "day", "participants"]
        )
        served = api.translate_response(
            load("input/response.structured.anthropic.json"),
            src=Dialect.ANTHROPIC,
            dst=src,
            client_model="cm",
        )
        assert json.loads(answer_text(served, src)) == CLASSIFIER
    chat = api.translate_response(
        load("input/response.structured.anthropic.json"),
        src=Dialect.ANTHROPIC,
        dst=Dialect.OPENAI_CHAT,
        client_model="cm",
    )
    assert chat["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in chat["choices"][0]["message"]


def test_anthropic_json_mode_is_a_forced_tool_taking_any_object() -> None:
    out = translate(
        load("input/request.json_mode.openai.json"), Dialect.OPENAI_CHAT, Dialect.ANTHROPIC
    )
    assert out["tools"][0]["input_schema"] == {"type": "object"}
    assert out["tool_choice"] == {"type": "tool", "name": anthropic_json.JSON_TOOL}


def test_a_non_object_schema_rides_in_a_value_property_to_anthropic_and_back() -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "three colours"}]}],
        "generationConfig": {
            "responseMimeType": "application/json",
            "responseSchema": {"type": "ARRAY", "items": {"type": "STRING"}},
        },
    }
    out = translate(body, Dialect.GEMINI, Dialect.ANTHROPIC)
    assert out["tools"][0]["name"] == anthropic_json.JSON_VALUE_TOOL
    assert out["tools"][0]["input_schema"] == {
        "type": "object",
        "properties": {"value": {"type": "array", "items": {"type": "string"}}},
        "required": ["value"],
    }
    reply = {
        "id": "msg_1",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": anthropic_json.JSON_VALUE_TOOL,
                "input": {"value": ["red", "green", "blue"]},
            }
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 5},
    }
    served = api.translate_response(
        reply, src=Dialect.ANTHROPIC, dst=Dialect.GEMINI, client_model="g"
    )
    assert json.loads(answer_text(served, Dialect.GEMINI)) == ["red", "green", "blue"]
    # OpenAI structured outputs take object roots only: a clear 400, not an upstream error.
    with pytest.raises(BadRequest, match="response schema: an OpenAI upstream needs an object"):
        translate(body, Dialect.GEMINI, Dialect.OPENAI_RESPONSES)


def test_with_the_clients_own_tools_anthropic_must_call_a_tool_or_answer() -> None:
    body = load("input/request.structured.openai.json")
    body["tools"] = [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    ]
    body["reasoning_effort"] = "high"
    out = translate(body, Dialect.OPENAI_CHAT, Dialect.ANTHROPIC)
    assert [t["name"] for t in out["tools"]] == ["lookup", anthropic_json.JSON_TOOL]
    assert out["tool_choice"] == {"type": "any"}
    assert "thinking" not in out  # Anthropic rejects thinking with a forced tool choice
    reply = {
        "id": "msg_2",
        "content": [{"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {}}],
        "stop_reason": "tool_use",
        "usage": {},
    }
    chat = api.translate_response(
        reply, src=Dialect.ANTHROPIC, dst=Dialect.OPENAI_CHAT, client_model="m"
    )
    assert chat["choices"][0]["finish_reason"] == "tool_calls"  # a real call stays a call
    body["tool_choice"] = "none"
    out = translate(body, Dialect.OPENAI_CHAT, Dialect.ANTHROPIC)
    assert out["tool_choice"] == {"type": "tool", "name": anthropic_json.JSON_TOOL}


def test_a_client_tool_with_the_reserved_name_is_refused() -> None:
    body = load("input/request.json_mode.openai.json")
    body["tools"] = [{"type": "function", "function": {"name": anthropic_json.JSON_TOOL}}]
    with pytest.raises(BadRequest, match="tools: ccx_json_response: the name is reserved"):
        translate(body, Dialect.OPENAI_CHAT, Dialect.ANTHROPIC)


def test_json_mode_to_openai_says_json_when_the_client_did_not() -> None:
    out = translate(
        load("input/request.json_mode.gemini.json"), Dialect.GEMINI, Dialect.OPENAI_CHAT
    )
    assert out["messages"][0] == {"role": "system", "content": "Answer in JSON."}
    assert out["response_format"] == {"type": "json_object"}
    said = translate(
        load("input/request.json_mode.openai-responses.json"),
        Dialect.OPENAI_RESPONSES,
        Dialect.OPENAI_CHAT,
    )
    assert said["messages"][0]["role"] == "user"  # "JSON" is in the prompt: no hint


def test_anthropic_clients_beta_output_format_reads_like_output_config() -> None:
    body = load("input/request.structured.anthropic.json")
    beta = {k: v for k, v in body.items() if k != "output_config"}
    beta["output_format"] = body["output_config"]["format"]
    assert api.read_request(beta, Dialect.ANTHROPIC) == api.read_request(body, Dialect.ANTHROPIC)


def test_text_formats_mean_free_text() -> None:
    chat = {"model": "m", "messages": [], "response_format": {"type": "text"}}
    resp = {"model": "m", "input": "hi", "text": {"format": {"type": "text"}}}
    gem = {"contents": [], "generationConfig": {"responseMimeType": "text/plain"}}
    assert api.read_request(chat, Dialect.OPENAI_CHAT).response_format is None
    assert api.read_request(resp, Dialect.OPENAI_RESPONSES).response_format is None
    assert api.read_request(gem, Dialect.GEMINI).response_format is None


# ---------------------------------------------------------------- streams
def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def anthropic_stream(tool: str, pieces: list[str]) -> bytes:
    usage = {"input_tokens": 10, "output_tokens": 1}
    return sse(
        {"type": "message_start", "message": {"id": "msg_s", "model": "claude", "usage": usage}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_s", "name": tool, "input": {}},
        },
        *(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": p},
            }
            for p in pieces
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    )


def through_json_answer_stream(raw: bytes, dst: Dialect) -> list[c.StreamEvent]:
    """What the proxy's stream path does once JsonAnswerStream is wired in (canonical path)."""
    splitter, decoder, answers = (
        streams.DataSplitter(),
        streams.decoder(Dialect.ANTHROPIC),
        anthropic_json.JsonAnswerStream(),
    )
    events: list[c.StreamEvent] = []
    for data in splitter.feed(raw):
        events += answers.feed(decoder.feed(data))
    encoder = streams.encoder(dst, model="cm", include_usage=True, created=0)
    for event in events:
        encoder.feed(event)  # the client's encoder accepts the rewritten grammar
    return events


def test_a_streamed_forced_tool_call_becomes_streamed_answer_text() -> None:
    pieces = ['{"reasoning": "One', ' listing."', ', "model_choice": "flash"}']
    events = through_json_answer_stream(
        anthropic_stream(anthropic_json.JSON_TOOL, pieces), Dialect.OPENAI_CHAT
    )
    assert [e for e in events if isinstance(e, c.BlockStart)] == [
        c.BlockStart(index=0, kind="text")
    ]
    text = "".join(e.text for e in events if isinstance(e, c.TextDelta))
    assert json.loads(text) == {"reasoning": "One listing.", "model_choice": "flash"}
    assert not any(isinstance(e, c.ToolArgsDelta) for e in events)
    (finish,) = [e for e in events if isinstance(e, c.Finish)]
    assert finish.stop_reason == c.StopReason.END_TURN


def test_a_streamed_value_answer_is_unwrapped_at_block_stop() -> None:
    pieces = ['{"value": ["red",', ' "blue"]}']
    events = through_json_answer_stream(
        anthropic_stream(anthropic_json.JSON_VALUE_TOOL, pieces), Dialect.GEMINI
    )
    texts = [e.text for e in events if isinstance(e, c.TextDelta)]
    assert texts == ['["red","blue"]']


def test_json_answer_stream_leaves_other_streams_alone() -> None:
    pieces = ['{"path": "a"}']
    events = through_json_answer_stream(anthropic_stream("read_file", pieces), Dialect.OPENAI_CHAT)
    assert any(isinstance(e, c.ToolArgsDelta) for e in events)
    (finish,) = [e for e in events if isinstance(e, c.Finish)]
    assert finish.stop_reason == c.StopReason.TOOL_USE


# ---------------------------------------------------------------- property: A -> B -> A
SCHEMAS = (
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
    {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    },
    {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}},
)
formats = st.one_of(
    st.builds(c.ResponseFormat, kind=st.just("json_object")),
    st.builds(
        c.ResponseFormat,
        kind=st.just("json_schema"),
        schema=st.sampled_from(SCHEMAS),
        name=st.sampled_from([None, "answer"]),
        description=st.sampled_from([None, "The answer"]),
        strict=st.sampled_from([None, True, False]),
    ),
)
structured_requests = st.builds(
    c.Request,
    model=st.just("m"),
    messages=conversations(),
    system=st.just((c.Text(text="Answer in JSON."),)),  # the JSON-mode hint has its own test
    max_tokens=st.integers(1, 4000),
    response_format=formats,
)


def format_meaning(fmt: c.ResponseFormat | None, dialects: set[Dialect]) -> c.ResponseFormat | None:
    """What survives the documented rules: Gemini and Anthropic have no schema name or
    strict flag, Gemini no description."""
    if fmt is None or fmt.kind == "json_object":
        return fmt
    lossy = bool(dialects & {Dialect.GEMINI, Dialect.ANTHROPIC})
    return c.ResponseFormat(
        kind="json_schema",
        schema=fmt.schema,
        name=None if lossy else fmt.name,
        strict=None if lossy else fmt.strict,
        description=None if Dialect.GEMINI in dialects else fmt.description,
    )


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=[f"{s}-via-{d}" for s, d in PAIRS])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=structured_requests)
def test_structured_output_there_and_back_keeps_the_meaning(
    a: Dialect, b: Dialect, req: c.Request
) -> None:
    fmt = req.response_format
    openai = {Dialect.OPENAI_CHAT, Dialect.OPENAI_RESPONSES}
    if (a in openai or b in openai) and fmt and fmt.schema and fmt.schema["type"] != "object":
        return  # OpenAI takes object roots only (a 400, tested above)
    start = through(req, a)
    back = through(through(start, b), a)
    dialects = {a, b}
    assert normalise(back, dialects) == normalise(start, dialects)
    assert format_meaning(back.response_format, dialects) == format_meaning(
        start.response_format, dialects
    )


def test_stream_translator_turns_the_forced_tool_into_answer_text() -> None:
    """The wired path: StreamTranslator itself (fast lane included) does the rewrite."""
    pieces = ['{"reasoning": "One', ' listing."', ', "model_choice": "flash"}']
    raw = anthropic_stream(anthropic_json.JSON_TOOL, pieces)
    t = streams.StreamTranslator(
        src=Dialect.ANTHROPIC, dst=Dialect.OPENAI_CHAT, client_model="cm", created=0
    )
    out = t.feed(raw) + t.close()
    chunks = [
        json.loads(line[6:]) for line in out.decode().splitlines() if line.startswith("data: {")
    ]
    deltas = [ch["choices"][0]["delta"] for ch in chunks if ch["choices"]]
    assert not any("tool_calls" in d for d in deltas)
    text = "".join(d.get("content") or "" for d in deltas)
    assert json.loads(text) == {"reasoning": "One listing.", "model_choice": "flash"}
    finishes = [ch["choices"][0]["finish_reason"] for ch in chunks if ch["choices"]]
    assert finishes[-1] == "stop"
    assert t.completed
