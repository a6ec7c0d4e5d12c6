"""Tool round trips with the official SDKs through the proxy, upstream of ANOTHER dialect.

For each of the 12 (client API, upstream dialect) pairs: turn 1 streams, and the fake
upstream answers with tests/data/translate_streams/upstream_<dialect>.sse (reasoning, text,
then two parallel `get_weather` calls: Paris and São Paulo). The SDK must parse both calls.
Turn 2 sends the history and both tool results in the client's own form; we assert what the
upstream received, in its own form: both calls in the history, each result paired with its
call (same id, in order; Gemini by name and position), the upstream's own call ids back
where it minted them, and its opaque reasoning token replayed (the README (Cross-dialect translation)) unless the
client is Chat Completions, which has no field to carry one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from tests.fakes import FakeUpstream
from tests.sdk_harness import (
    RunningProxy,
    Upstream,
    anthropic_client,
    genai_client,
    json_file,
    openai_client,
    proxy_thread,
    sdk_offline,
    sse_file,
)
from tests.test_sdks_cross import PAIR_IDS, PAIRS, STREAMS, UPSTREAMS, path_of, said, upstream_seen

TOOL_STREAMS = Path(__file__).parent / "data" / "translate_streams"
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
ASK = "Weather in Paris and São Paulo?"
ASKED = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "São Paulo"})]
RESULTS = ("18°C", "25°C")  # for the first call, the second
# What each upstream's tool stream minted: its call ids (Gemini: none) and the opaque
# reasoning token that must come back to it in turn 2 (Chat Completions: none).
CALL_IDS = {
    "anthropic": ("toolu_01A09q90qw90lq917835lq9", "toolu_01B7xv2pqYz6rT"),
    "openai": ("call_DdmO9pD3xa9XTPNJ32zg2hcA", "call_ABGhuWqnSTYCZf9CIKy2FRWo"),
    "openai-responses": ("call_DdmO9pD3xa9XTPNJ32zg2hcA", "call_ABGhuWqnSTYCZf9CIKy2FRWo"),
    "gemini": None,
}
REPLAY = {
    "anthropic": "EqQBCkYIARgCIkDsig+/Zw==",
    "openai": None,
    "openai-responses": "gAAAAABoENC=",
    "gemini": "CpwBAdHtim9+/sig",
}

Call = tuple[str | None, str | None, Any]  # (id, name, arguments)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    check = sdk_offline(monkeypatch)
    yield
    check()


# ---------------------------------------------------------------- the clients' round trips
# Each runs turn 1 (streamed, tools declared) and turn 2 (history + one result per call)
# and returns (the calls the SDK parsed in turn 1, the text of the turn 2 answer).


def anthropic_round_trip(proxy: RunningProxy) -> tuple[list[Call], str]:
    client = anthropic_client(proxy)
    tools: Any = [{"name": "get_weather", "description": "Weather", "input_schema": CITY}]
    ask: Any = {"role": "user", "content": ASK}
    with client.messages.stream(
        model="claude-x", max_tokens=1024, tools=tools, messages=[ask]
    ) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    uses = [block for block in first.content if block.type == "tool_use"]
    assert len(uses) == len(RESULTS)
    results: Any = [
        {"type": "tool_result", "tool_use_id": use.id, "content": result}
        for use, result in zip(uses, RESULTS, strict=True)
    ]
    turns: Any = [ask, {"role": "assistant", "content": first.content}]
    turns.append({"role": "user", "content": results})
    answer = client.messages.create(model="claude-x", max_tokens=1024, tools=tools, messages=turns)
    text = "".join(block.text for block in answer.content if block.type == "text")
    return [(use.id, use.name, use.input) for use in uses], text


def openai_round_trip(proxy: RunningProxy) -> tuple[list[Call], str]:
    client = openai_client(proxy)
    tools: Any = [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather", "parameters": CITY},
        }
    ]
    ask: Any = {"role": "user", "content": ASK}
    with client.chat.completions.stream(model="gpt-x", messages=[ask], tools=tools) as stream:
        first = stream.get_final_completion()
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == len(RESULTS) and all(c.type == "function" for c in calls)
    said_: Any = choice.message.model_dump(exclude_none=True, exclude={"parsed"})
    results: Any = [
        {"role": "tool", "tool_call_id": call.id, "content": result}
        for call, result in zip(calls, RESULTS, strict=True)
    ]
    answer = client.chat.completions.create(
        model="gpt-x", tools=tools, messages=[ask, said_, *results]
    )
    parsed: list[Call] = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls]
    return parsed, answer.choices[0].message.content or ""


def responses_round_trip(proxy: RunningProxy) -> tuple[list[Call], str]:
    client = openai_client(proxy)
    tool: Any = {"type": "function", "name": "get_weather", "description": "Weather"}
    tool |= {"parameters": CITY, "strict": False}
    with client.responses.stream(model="gpt-x", input=ASK, tools=[tool]) as stream:
        first = stream.get_final_response()
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == len(RESULTS)
    history: Any = [item.model_dump(exclude_none=True) for item in first.output]
    outputs: Any = [
        {"type": "function_call_output", "call_id": call.call_id, "output": result}
        for call, result in zip(calls, RESULTS, strict=True)
    ]
    answer = client.responses.create(
        model="gpt-x", tools=[tool], input=[{"role": "user", "content": ASK}, *history, *outputs]
    )
    return [(c.call_id, c.name, json.loads(c.arguments)) for c in calls], answer.output_text


def gemini_round_trip(proxy: RunningProxy) -> tuple[list[Call], str]:
    client = genai_client(proxy)
    declaration = types.FunctionDeclaration(
        name="get_weather", description="Weather", parameters_json_schema=CITY
    )
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[declaration])])
    ask = types.Content(role="user", parts=[types.Part.from_text(text=ASK)])
    chunks = list(
        client.models.generate_content_stream(model="gemini-x", contents=ask, config=config)
    )
    parts = [
        part
        for chunk in chunks
        for candidate in (chunk.candidates or [])[:1]
        for part in (candidate.content.parts if candidate.content else None) or []
    ]
    calls = [part.function_call for part in parts if part.function_call]
    assert len(calls) == len(RESULTS)
    replies = [  # ids sent back when the model gave them, as Gemini CLI does
        types.Part(
            function_response=types.FunctionResponse(
                id=call.id, name=call.name, response={"output": result}
            )
        )
        for call, result in zip(calls, RESULTS, strict=True)
    ]
    turns = [
        ask,
        types.Content(role="model", parts=parts),
        types.Content(role="user", parts=replies),
    ]
    answer = client.models.generate_content(model="gemini-x", contents=turns, config=config)
    return [(call.id, call.name, call.args) for call in calls], answer.text or ""


ROUND_TRIP: dict[str, Callable[[RunningProxy], tuple[list[Call], str]]] = {
    "anthropic": anthropic_round_trip,
    "openai": openai_round_trip,
    "openai-responses": responses_round_trip,
    "gemini": gemini_round_trip,
}


# ---------------------------------------------------------------- what the upstream received


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """A request body, read in its own dialect: tools declared, calls and results in it."""

    declared: list[tuple[str, Any]]  # (name, JSON schema)
    calls: list[Call]
    results: list[tuple[str | None, str]]  # (the call id it answers, its text)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(c, dict) and "text" in c for c in content):
        return "".join(c["text"] for c in content)
    return json.dumps(content, ensure_ascii=False)


def read_anthropic(body: dict[str, Any]) -> Turn:
    blocks = [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]]
    return Turn(
        declared=[(t["name"], t.get("input_schema")) for t in body.get("tools", [])],
        calls=[(b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"],
        results=[
            (b["tool_use_id"], _text(b.get("content")))
            for b in blocks
            if b["type"] == "tool_result"
        ],
    )


def read_openai(body: dict[str, Any]) -> Turn:
    messages = body["messages"]
    calls = [c for m in messages for c in m.get("tool_calls") or []]
    return Turn(
        declared=[
            (t["function"]["name"], t["function"].get("parameters")) for t in body.get("tools", [])
        ],
        calls=[
            (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls
        ],
        results=[(m["tool_call_id"], _text(m["content"])) for m in messages if m["role"] == "tool"],
    )


def read_responses(body: dict[str, Any]) -> Turn:
    items = [item for item in body["input"] if isinstance(item, dict)]
    return Turn(
        declared=[(t["name"], t.get("parameters")) for t in body.get("tools", [])],
        calls=[
            (i["call_id"], i["name"], json.loads(i["arguments"]))
            for i in items
            if i.get("type") == "function_call"
        ],
        results=[
            (i["call_id"], _text(i["output"]))
            for i in items
            if i.get("type") == "function_call_output"
        ],
    )


def read_gemini(body: dict[str, Any]) -> Turn:
    """Gemini pairs a functionResponse with its call by id when given, else by name + order:
    both must match."""
    parts = [p for content in body["contents"] for p in content.get("parts", [])]
    calls = [p["functionCall"] for p in parts if "functionCall" in p]
    responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
    return Turn(
        declared=[
            (d["name"], d.get("parametersJsonSchema", d.get("parameters")))
            for t in body.get("tools", [])
            for d in t.get("functionDeclarations", [])
        ],
        calls=[(_gemini_key(c), c["name"], c.get("args")) for c in calls],
        results=[(_gemini_key(r), _text(r["response"])) for r in responses],
    )


def _gemini_key(part: dict[str, Any]) -> str:
    """A call or response's pairing key: its id (when sent) and its function name."""
    return f"{part.get('id')}/{part['name']}"


READ: dict[str, Callable[[dict[str, Any]], Turn]] = {
    "anthropic": read_anthropic,
    "openai": read_openai,
    "openai-responses": read_responses,
    "gemini": read_gemini,
}


@pytest.mark.parametrize(("client", "up"), PAIRS, ids=PAIR_IDS)
def test_sdk_tool_round_trip_with_another_dialect(client: str, up: str) -> None:
    side, minted = UPSTREAMS[up], CALL_IDS[up]
    tool_stream = sse_file(TOOL_STREAMS / f"upstream_{up}.sse")
    fake = FakeUpstream().then(tool_stream, json_file(STREAMS / side.plain))
    with proxy_thread(Upstream(provider=up, fake=fake, model=side.model)) as proxy:
        calls, answer = ROUND_TRIP[client](proxy)
    # The SDK parsed both calls, with ids it can send back.
    assert [(name, args) for _, name, args in calls] == ASKED
    ids = [call_id for call_id, _, _ in calls]
    if minted is not None:
        assert ids == list(minted)  # the upstream's own ids reach the client
    elif client != "gemini":
        assert all(ids) and len(set(ids)) == len(ids)  # synthesised, distinct
    assert answer == said(up, (STREAMS / side.plain).read_bytes())
    assert [path_of(r) for r in fake.requests] == [side.path(True), side.path(False)]
    first, second = (upstream_seen(side, r) for r in fake.requests)
    turn1, turn2 = READ[up](first), READ[up](second)
    assert turn1.declared == turn2.declared == [("get_weather", CITY)]
    assert (turn1.calls, turn1.results) == ([], [])
    # Turn 2, in the upstream's own form: both calls, each result paired with its call.
    assert [(name, args) for _, name, args in turn2.calls] == ASKED
    assert [key for key, _ in turn2.results] == [key for key, _, _ in turn2.calls]
    texts = [text for _, text in turn2.results]
    assert [want in text for text, want in zip(texts, RESULTS, strict=True)] == [True, True]
    if minted is not None:
        assert [key for key, _, _ in turn2.calls] == list(minted)
    token = REPLAY[up]
    if token is not None and client != "openai":
        assert token in json.dumps(second, ensure_ascii=False)  # reasoning replayed
    assert [line["status"] for line in proxy.log] == [200, 200]
