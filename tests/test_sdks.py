"""The official SDKs (anthropic, openai, google-genai) work through the proxy, same dialect.

Each test points an SDK's sync client at the proxy (running with its fakes on a worker
thread, tests/sdk_harness.py) and an upstream of the SDK's own dialect answering with the
sample bodies in tests/data/streams/. We assert what the SDK parsed (text, tool calls,
usage) and what the upstream received (path, the upstream's key in the provider's own
header and never the client's, the body's model and tools). Only 127.0.0.1 is reachable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types

from core.http import Request
from tests.fakes import FakeUpstream, Reply, json_reply
from tests.sdk_harness import (
    CLIENT_KEY,
    UPSTREAM_KEY,
    RunningProxy,
    Upstream,
    loopback_only,
    proxy_thread,
)

DATA = Path(__file__).parent / "data" / "streams"
WEATHER = {
    "type": "object",
    "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
    "required": ["location"],
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Loopback only, no SDK settings from the environment, and no Google ADC lookups."""
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI",
                 "GOOGLE_CLOUD_PROJECT", "GOOGLE_GENAI_API_VERSION", "OPENAI_BASE_URL",
                 "ANTHROPIC_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                 "http_proxy", "https_proxy", "all_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    adc_calls: list[Any] = []

    def no_adc(*args: Any, **kwargs: Any) -> Any:
        adc_calls.append(args)
        raise AssertionError("google-genai asked for ADC credentials")

    monkeypatch.setattr("google.auth.default", no_adc)
    refused = loopback_only(monkeypatch)
    yield
    assert adc_calls == [] and refused == []


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def json_file(name: str) -> Reply:
    return Reply(headers=[(b"content-type", b"application/json")], body=sample(name))


def sse_file(name: str) -> Reply:
    """The sample stream, one chunk per event (CRLF-separated for Gemini, as Google sends)."""
    raw = sample(name)
    sep = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
    chunks: list[bytes] = [event + sep for event in raw.split(sep) if event.strip()]
    return Reply(headers=[(b"content-type", b"text/event-stream")], chunks=list(chunks))


def fake(*replies: Reply) -> FakeUpstream:
    return FakeUpstream().then(*replies)


def body_of(request: Request) -> dict[str, Any]:
    decoded = json.loads(request.body)
    assert isinstance(decoded, dict)
    return decoded


def relayed(up: FakeUpstream, sent: list[httpx.Request], auth: tuple[bytes, bytes]) -> list[str]:
    """Each SDK request reached the upstream byte-exact, with the upstream's key in the
    provider's own header and the client's key nowhere; returns the upstream paths."""
    assert [r.body for r in up.requests] == [r.content for r in sent]
    for request in up.requests:
        assert request.header(auth[0]) == auth[1]
        seen = b"\n".join(v for _, v in request.headers) + request.query.encode() + request.body
        assert CLIENT_KEY.encode() not in seen
    return [r.path + (f"?{r.query}" if r.query else "") for r in up.requests]


X_API_KEY = (b"x-api-key", UPSTREAM_KEY.encode())
BEARER = (b"authorization", b"Bearer " + UPSTREAM_KEY.encode())
GOOG_KEY = (b"x-goog-api-key", UPSTREAM_KEY.encode())


# ---------------------------------------------------------------- anthropic


def claude(proxy: RunningProxy, sent: list[httpx.Request]) -> anthropic.Anthropic:
    hooks = anthropic.DefaultHttpxClient(event_hooks={"request": [sent.append]})
    return anthropic.Anthropic(
        base_url=proxy.url, api_key=CLIENT_KEY, max_retries=0, timeout=5, http_client=hooks
    )


def test_anthropic_messages_create_and_count_tokens() -> None:
    up = fake(json_file("anthropic_message.json"), json_reply({"input_tokens": 17}))
    sent: list[httpx.Request] = []
    with proxy_thread(Upstream(provider="anthropic", fake=up)) as proxy:
        client = claude(proxy, sent)
        hi: Any = [{"role": "user", "content": "Hi"}]
        msg = client.messages.create(model="claude-x", max_tokens=64, messages=hi)
        count = client.messages.count_tokens(model="claude-x", messages=hi)
    assert isinstance(msg.content[0], anthropic.types.TextBlock)
    assert msg.content[0].text == "Hi! My name is Claude." and msg.stop_reason == "end_turn"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (2095, 503)
    assert msg.usage.cache_read_input_tokens == 1800
    assert count.input_tokens == 17
    assert relayed(up, sent, X_API_KEY) == ["/v1/messages", "/v1/messages/count_tokens"]
    assert all(body_of(r)["model"] == "claude-x" for r in up.requests)
    assert all(r.header(b"anthropic-version") is not None for r in up.requests)
    logged = [(line["operation"], line["input_tokens"]) for line in proxy.log]
    assert logged == [("generate", 2095), ("count_tokens", None)]


def test_anthropic_streaming_helper_and_raw_events() -> None:
    up = fake(sse_file("anthropic_text.sse"), sse_file("anthropic_text.sse"))
    sent: list[httpx.Request] = []
    with proxy_thread(Upstream(provider="anthropic", fake=up)) as proxy:
        client = claude(proxy, sent)
        hi: Any = [{"role": "user", "content": "Hi"}]
        with client.messages.stream(model="claude-x", max_tokens=64, messages=hi) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        raw = client.messages.create(model="claude-x", max_tokens=64, messages=hi, stream=True)
        kinds = [event.type for event in raw]
    assert text.startswith("Hello! The stream ends with event: message_stop")
    assert text.endswith("ünïcødé 🎉")
    assert final.usage.output_tokens == 31 and final.usage.cache_read_input_tokens == 20480
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.count("content_block_delta") == 2
    assert relayed(up, sent, X_API_KEY) == ["/v1/messages"] * 2
    assert [body_of(r)["stream"] for r in up.requests] == [True, True]
    assert [line["output_tokens"] for line in proxy.log] == [31, 31]


def test_anthropic_tool_use_round_trip() -> None:
    tools: Any = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER}]
    up = fake(sse_file("anthropic_tool_use.sse"), json_file("anthropic_message.json"))
    sent: list[httpx.Request] = []
    with proxy_thread(Upstream(provider="anthropic", fake=up)) as proxy:
        client = claude(proxy, sent)
        ask: Any = {"role": "user", "content": "Weather in Paris?"}
        with client.messages.stream(
            model="claude-x", max_tokens=256, tools=tools, messages=[ask]
        ) as stream:
            first = stream.get_final_message()
        tool_use = first.content[-1]
        assert isinstance(tool_use, anthropic.types.ToolUseBlock)
        result: Any = {"type": "tool_result", "tool_use_id": tool_use.id, "content": "18°C"}
        turns: Any = [ask, {"role": "assistant", "content": first.content}]
        turns.append({"role": "user", "content": [result]})
        answer = client.messages.create(
            model="claude-x", max_tokens=256, tools=tools, messages=turns
        )
    assert [block.type for block in first.content] == ["thinking", "text", "tool_use"]
    assert first.stop_reason == "tool_use" and tool_use.name == "get_weather"
    assert tool_use.input == {"location": "Paris, France", "unit": "celsius"}
    assert answer.content[0].type == "text"
    assert relayed(up, sent, X_API_KEY) == ["/v1/messages"] * 2
    turn1, turn2 = (body_of(r) for r in up.requests)
    assert turn1["tools"] == turn2["tools"] == tools
    assert turn2["messages"][1]["content"][0]["signature"].startswith("EqQB")  # thinking kept
    assert turn2["messages"][2]["content"][0]["tool_use_id"] == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"


# ---------------------------------------------------------------- openai chat

GPT_TOOLS: Any = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER},
    }
]


def gpt(proxy: RunningProxy, sent: list[httpx.Request]) -> openai.OpenAI:
    hooks = openai.DefaultHttpxClient(event_hooks={"request": [sent.append]})
    return openai.OpenAI(
        base_url=proxy.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=5, http_client=hooks
    )


def test_openai_chat_plain_and_streamed_with_usage() -> None:
    up = fake(json_file("openai_chat_completion.json"), sse_file("openai_chat_text.sse"))
    sent: list[httpx.Request] = []
    with proxy_thread(Upstream(provider="openai", fake=up)) as proxy:
        client = gpt(proxy, sent)
        hi: Any = [{"role": "user", "content": "Hi"}]
        plain = client.chat.completions.create(model="gpt-x", messages=hi)
        with_usage: Any = {"include_usage": True}
        stream = client.chat.completions.create(
            model="gpt-x", messages=hi, stream=True, stream_options=with_usage
        )
        chunks = list(stream)
    assert plain.choices[0].message.content == "Hello! How can I assist you today?"
    assert plain.usage is not None and plain.usage.total_tokens == 29
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! SSE ends with\ndata: [DONE] — ünïcødé 🎉"
    usage = chunks[-1].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (1187, 12)
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 1024
    assert relayed(up, sent, BEARER) == ["/v1/chat/completions"] * 2
    streamed = body_of(up.requests[1])
    assert streamed["stream_options"] == with_usage and streamed["model"] == "gpt-x"
    assert [line["output_tokens"] for line in proxy.log] == [10, 12]


def test_openai_chat_tool_calls_round_trip() -> None:
    up = fake(sse_file("openai_chat_tool_calls.sse"), json_file("openai_chat_completion.json"))
    sent: list[httpx.Request] = []
    with proxy_thread(Upstream(provider="openai", fake=up)) as proxy:
        client = gpt(proxy, sent)
        ask: Any = {"role": "user", "content": "Weather in Paris?"}
        with client.chat.completions.stream(
            model="gpt-x", messages=[ask], tools=GPT_TOOLS
        ) as stream:
            first = stream.get_final_completion()
        calls = first.choices[0].message.tool_calls or []
        assert len(calls) == 1 and calls[0].type == "function"
        call = calls[0]
        said: Any = first.choices[0].message.model_dump(exclude_none=True, exclude={"parsed"})
        result: Any = {"role": "tool", "tool_call_id": call.id, "content": "18°C"}
        answer = client.chat.completions.create(
            model="gpt-x", tools=GPT_TOOLS, messages=[ask, said, result]
        )
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Paris, France"}
    assert answer.choices[0].message.content == "Hello! How can I assist you today?"
    assert relayed(up, sent, BEARER) == ["/v1/chat/completions"] * 2
    turn1, turn2 = (body_of(r) for r in up.requests)
    assert turn1["tools"] == turn2["tools"] == GPT_TOOLS and turn1["stream"] is True
    assert turn2["messages"][1]["tool_calls"][0]["id"] == "call_DdmO9pD3xa9XTPNJ32zg2hcA"
    assert turn2["messages"][2]["tool_call_id"] == "call_DdmO9pD3xa9XTPNJ32zg2hcA"


# ---------------------------------------------------------------- openai responses

SHELL_TOOL: Any = {
    "type": "function",
    "name": "shell",
    "description": "Runs a shell command and returns its output.",
    "parameters": {"type": "object", "properties": {"command": {"type": "array"}}},
    "strict": False,
}


def test_openai_responses_plain_and_streamed() -> None:
    up = fake(json_file("openai_response.json"), sse_file("openai_responses_text.sse"))
    sent: list[httpx.Request] = []
    with proxy_thread(Upstream(provider="openai-responses", fake=up)) as proxy:
        client = gpt(proxy, sent)
        plain = client.responses.create(model="gpt-x", input="Describe the image.")
        with client.responses.stream(model="gpt-x", input="Hi", instructions="Be brief.") as s:
            deltas = [e.delta for e in s if e.type == "response.output_text.delta"]
            final = s.get_final_response()
    assert plain.output_text == "The image depicts a scenic landscape."
    assert plain.usage is not None and plain.usage.output_tokens == 52
    assert plain.usage.input_tokens_details.cached_tokens == 256
    assert "".join(deltas) == final.output_text
    assert final.output_text.startswith("Hi there! The last event is")
    assert final.usage is not None and final.usage.total_tokens == 2155
    assert relayed(up, sent, BEARER) == ["/v1/responses"] * 2
    assert body_of(up.requests[1])["instructions"] == "Be brief."
    logged = [(line["stream"], line["input_tokens"]) for line in proxy.log]
    assert logged == [(False, 328), (True, 2137)]


def test_openai_responses_function_call_round_trip() -> None:
    up = fake(sse_file("openai_responses_function_call.sse"), json_file("openai_response.json"))
    sent: list[httpx.Request] = []
    with proxy_thread(Upstream(provider="openai-responses", fake=up)) as proxy:
        client = gpt(proxy, sent)
        with client.responses.stream(model="gpt-x", input="List files.", tools=[SHELL_TOOL]) as s:
            first = s.get_final_response()
        calls = [item for item in first.output if item.type == "function_call"]
        assert len(calls) == 1
        call = calls[0]
        output: Any = {"type": "function_call_output", "call_id": call.call_id, "output": "a.txt"}
        history: Any = [item.model_dump(exclude_none=True) for item in first.output]
        answer = client.responses.create(
            model="gpt-x",
            tools=[SHELL_TOOL],
            input=[{"role": "user", "content": "List files."}, *history, output],
        )
    assert (call.name, json.loads(call.arguments)) == ("shell", {"command": ["ls", "-la"]})
    assert first.usage is not None and first.usage.output_tokens == 150
    assert answer.output_text == "The image depicts a scenic landscape."
    assert relayed(up, sent, BEARER) == ["/v1/responses"] * 2
    turn1, turn2 = (body_of(r) for r in up.requests)
    assert turn1["tools"] == turn2["tools"] == [SHELL_TOOL] and turn1["stream"] is True
    assert turn2["input"][-1]["call_id"] == "call_k2WpHMl7AYq1dDrj1Pz2Qo5U"
    assert turn2["input"][1]["encrypted_content"] == "gAAAAABodm8C3HI2mVXEoWk6dN4xV0o7l3mD2LcQ"


# ---------------------------------------------------------------- google-genai

# None = the SDK's own default (google-genai 3.x: "v1"); the proxy serves both prefixes
# and always asks the upstream under /v1beta.
API_VERSIONS = [None, "v1beta"]
GEMINI_UP = "/v1beta/models/gemini-x"


def gemini(proxy: RunningProxy, api_version: str | None, sent: list[httpx.Request]) -> genai.Client:
    options = types.HttpOptions(
        base_url=proxy.url,
        api_version=api_version,
        timeout=5000,  # milliseconds
        retry_options=types.HttpRetryOptions(attempts=1),
        client_args={"event_hooks": {"request": [sent.append]}},
    )
    return genai.Client(api_key=CLIENT_KEY, http_options=options)


def asked(sent: list[httpx.Request]) -> list[str]:
    return [r.url.raw_path.decode() for r in sent]


def client_prefix(api_version: str | None) -> str:
    return f"/{api_version or 'v1'}/models/gemini-x"


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_gemini_generate_content_and_count_tokens(api_version: str | None) -> None:
    up = fake(json_file("gemini_generate.json"), json_reply({"totalTokens": 31}))
    sent: list[httpx.Request] = []
    with proxy_thread(Upstream(provider="gemini", fake=up)) as proxy:
        client = gemini(proxy, api_version, sent)
        result = client.models.generate_content(model="gemini-x", contents="Hi")
        count = client.models.count_tokens(model="gemini-x", contents="Hi")
    assert result.text == "Hello! How can I help you today?"
    usage = result.usage_metadata
    assert usage is not None and (usage.prompt_token_count, usage.candidates_token_count) == (4, 9)
    assert usage.thoughts_token_count == 27
    assert count.total_tokens == 31
    prefix = client_prefix(api_version)
    assert asked(sent) == [f"{prefix}:generateContent", f"{prefix}:countTokens"]
    assert relayed(up, sent, GOOG_KEY) == [
        f"{GEMINI_UP}:generateContent",
        f"{GEMINI_UP}:countTokens",
    ]
    assert body_of(up.requests[0])["contents"] == [{"parts": [{"text": "Hi"}], "role": "user"}]
    assert proxy.log[0]["output_tokens"] == 9 + 27


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_gemini_generate_content_stream(api_version: str | None) -> None:
    up = fake(sse_file("gemini_text.sse"))
    sent: list[httpx.Request] = []
    with proxy_thread(Upstream(provider="gemini", fake=up)) as proxy:
        client = gemini(proxy, api_version, sent)
        chunks = list(client.models.generate_content_stream(model="gemini-x", contents="Why?"))
    assert len(chunks) == 3
    text = "".join(c.text or "" for c in chunks)
    assert text.startswith("The sky is blue") and text.endswith("shorter wavelengths scatter more.")
    usage = chunks[-1].usage_metadata
    assert usage is not None and usage.candidates_token_count == 21
    assert asked(sent) == [f"{client_prefix(api_version)}:streamGenerateContent?alt=sse"]
    assert relayed(up, sent, GOOG_KEY) == [f"{GEMINI_UP}:streamGenerateContent?alt=sse"]
    assert proxy.log[0]["stream"] is True and proxy.log[0]["output_tokens"] == 21 + 452


@pytest.mark.parametrize("api_version", API_VERSIONS)
def test_gemini_function_calling_round_trip(api_version: str | None) -> None:
    declaration = types.FunctionDeclaration(
        name="getWeather", description="Weather", parameters_json_schema=WEATHER
    )
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[declaration])])
    up = fake(sse_file("gemini_function_call.sse"), json_file("gemini_generate.json"))
    sent: list[httpx.Request] = []
    with proxy_thread(Upstream(provider="gemini", fake=up)) as proxy:
        client = gemini(proxy, api_version, sent)
        ask = types.Content(role="user", parts=[types.Part.from_text(text="Weather in Tokyo?")])
        chunks = list(
            client.models.generate_content_stream(model="gemini-x", contents=ask, config=config)
        )
        calls = [call for chunk in chunks for call in chunk.function_calls or []]
        said = chunks[0].candidates[0].content if chunks[0].candidates else None
        assert len(calls) == 1 and said is not None
        reply = types.Part.from_function_response(name="getWeather", response={"temp_c": 18})
        turns = [ask, said, types.Content(role="user", parts=[reply])]
        answer = client.models.generate_content(model="gemini-x", contents=turns, config=config)
    assert (calls[0].name, calls[0].args) == ("getWeather", {"location": "Tokyo"})
    assert answer.text == "Hello! How can I help you today?"
    prefix = client_prefix(api_version)
    assert asked(sent) == [f"{prefix}:streamGenerateContent?alt=sse", f"{prefix}:generateContent"]
    assert relayed(up, sent, GOOG_KEY) == [
        f"{GEMINI_UP}:streamGenerateContent?alt=sse",
        f"{GEMINI_UP}:generateContent",
    ]
    turn1, turn2 = (body_of(r) for r in up.requests)
    for body in (turn1, turn2):
        declared = body["tools"][0]["functionDeclarations"][0]
        # google-genai itself spells this field in snake_case on the wire; passed as is
        assert declared["name"] == "getWeather" and declared["parameters_json_schema"] == WEATHER
    said_back = turn2["contents"][1]["parts"][0]
    assert said_back["functionCall"] == {"name": "getWeather", "args": {"location": "Tokyo"}}
    assert said_back["thoughtSignature"].startswith("CikB")
    assert turn2["contents"][2]["parts"][0]["functionResponse"]["response"] == {"temp_c": 18}
    assert proxy.log[0]["output_tokens"] == 14 + 104
