"""The official SDKs through the proxy with an upstream of ANOTHER dialect: plain and streamed.

Each client API (anthropic Messages, openai Chat Completions and Responses, google-genai)
asks the proxy, whose only upstream is a fake of each other dialect (with a `model:`, so it
is a candidate) answering with the realistic samples in tests/data/streams/. We assert what
the SDK parsed (the upstream's text; usage as the README (Cross-dialect translation) says: input tokens counting cache,
output tokens counting reasoning) and what the upstream received (its own path, auth header,
model and stream flag). Tool round trips live in test_sdks_cross_tools.py, which reuses the
tables here. Last, "Claude first, Gemini on rate limit": the anthropic SDK gets its answer
from Gemini when the anthropic upstream answers 429, and the access log shows both attempts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from core.http import Request
from core.sse import SSEParser
from tests.fakes import FakeUpstream, json_reply
from tests.sdk_harness import (
    CLIENT_KEY,
    UPSTREAM_KEY,
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

STREAMS = Path(__file__).parent / "data" / "streams"
DIALECTS = ("anthropic", "openai", "openai-responses", "gemini")
PAIRS = [(c, u) for c in DIALECTS for u in DIALECTS if c != u]
PAIR_IDS = [f"{c}<-{u}" for c, u in PAIRS]


@dataclass(frozen=True, slots=True, kw_only=True)
class Side:
    """One upstream dialect: how it is addressed and what its fake answers."""

    provider: str
    model: str  # the `model:` in its config
    auth: tuple[bytes, bytes]
    plain: str  # sample file names under tests/data/streams/
    stream: str
    plain_usage: tuple[
        int, int
    ]  # (input incl. cache, output incl. reasoning), the README (Cross-dialect translation)
    stream_usage: tuple[int, int]

    def usage(self, stream: bool) -> tuple[int, int]:
        return self.stream_usage if stream else self.plain_usage

    def path(self, stream: bool) -> str:
        if self.provider == "gemini":
            method = "streamGenerateContent?alt=sse" if stream else "generateContent"
            return f"/v1beta/models/{self.model}:{method}"
        return {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}.get(
            self.provider, "/v1/responses"
        )


BEARER = (b"authorization", b"Bearer " + UPSTREAM_KEY.encode())
UPSTREAMS = {
    "anthropic": Side(
        provider="anthropic",
        model="claude-up",
        auth=(b"x-api-key", UPSTREAM_KEY.encode()),
        plain="anthropic_message.json",
        stream="anthropic_text.sse",
        plain_usage=(2095 + 1800, 503),
        stream_usage=(472 + 20480 + 1024, 31),
    ),
    "openai": Side(
        provider="openai",
        model="gpt-up",
        auth=BEARER,
        plain="openai_chat_completion.json",
        stream="openai_chat_text.sse",
        plain_usage=(19, 10),
        stream_usage=(1187, 12),
    ),
    "openai-responses": Side(
        provider="openai-responses",
        model="gpt-resp-up",
        auth=BEARER,
        plain="openai_response.json",
        stream="openai_responses_text.sse",
        plain_usage=(328, 52),
        stream_usage=(2137, 18),
    ),
    "gemini": Side(
        provider="gemini",
        model="gemini-up",
        auth=(b"x-goog-api-key", UPSTREAM_KEY.encode()),
        plain="gemini_generate.json",
        stream="gemini_text.sse",
        plain_usage=(4, 9 + 27),
        stream_usage=(9, 21 + 452),
    ),
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    check = sdk_offline(monkeypatch)
    yield
    check()


def said(provider: str, raw: bytes) -> str:
    """The visible text an upstream sample carries (JSON body or SSE stream)."""
    if raw.lstrip().startswith(b"{"):
        return _text_of(provider, json.loads(raw), stream=False)
    parser = SSEParser()
    events = parser.feed(raw) + parser.close()
    return "".join(
        _text_of(provider, json.loads(e.data), True) for e in events if e.data[:1] == "{"
    )


def _text_of(provider: str, doc: dict[str, Any], stream: bool) -> str:
    if provider == "anthropic":
        blocks = [doc.get("delta", {})] if stream else doc["content"]
        return "".join(b.get("text", "") for b in blocks if b.get("type") in ("text", "text_delta"))
    if provider == "openai":
        choice = doc["choices"][0] if doc["choices"] else {}
        return (choice.get("delta" if stream else "message") or {}).get("content") or ""
    if provider == "openai-responses":
        if stream:
            return str(doc["delta"]) if doc["type"] == "response.output_text.delta" else ""
        parts = [p for item in doc["output"] for p in item.get("content", [])]
        return "".join(p["text"] for p in parts if p["type"] == "output_text")
    parts = doc["candidates"][0]["content"]["parts"]
    return "".join(p.get("text", "") for p in parts if not p.get("thought"))


def upstream_seen(side: Side, request: Request) -> dict[str, Any]:
    """The upstream got its own auth header and never the client's key; returns the body."""
    assert request.header(side.auth[0]) == side.auth[1]
    seen = b"\n".join(v for _, v in request.headers) + request.query.encode() + request.body
    assert CLIENT_KEY.encode() not in seen
    body = json.loads(request.body)
    assert isinstance(body, dict)
    if side.provider != "gemini":  # Gemini names the model in the path
        assert body["model"] == side.model
    return body


def path_of(request: Request) -> str:
    return request.path + (f"?{request.query}" if request.query else "")


# ---------------------------------------------------------------- one ask per client API
# Each returns (text, (input tokens incl. cache, output tokens incl. reasoning)).

Got = tuple[str, tuple[int, int]]
HI: Any = [{"role": "user", "content": "Hi"}]


def ask_anthropic(proxy: RunningProxy, stream: bool) -> Got:
    client = anthropic_client(proxy)
    msg: anthropic.types.Message
    if stream:
        with client.messages.stream(model="claude-x", max_tokens=64, messages=HI) as s:
            text = "".join(s.text_stream)
            msg = s.get_final_message()
    else:
        msg = client.messages.create(model="claude-x", max_tokens=64, messages=HI)
        text = "".join(block.text for block in msg.content if block.type == "text")
    u = msg.usage
    cached = (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0)
    return text, (u.input_tokens + cached, u.output_tokens)


def ask_openai(proxy: RunningProxy, stream: bool) -> Got:
    client = openai_client(proxy)
    if stream:
        chunks = list(
            client.chat.completions.create(
                model="gpt-x", messages=HI, stream=True, stream_options={"include_usage": True}
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        usage = chunks[-1].usage
    else:
        completion = client.chat.completions.create(model="gpt-x", messages=HI)
        text, usage = completion.choices[0].message.content or "", completion.usage
    assert usage is not None
    return text, (usage.prompt_tokens, usage.completion_tokens)


def ask_responses(proxy: RunningProxy, stream: bool) -> Got:
    client = openai_client(proxy)
    response: openai.types.responses.Response
    if stream:
        with client.responses.stream(model="gpt-x", input="Hi") as s:
            deltas = [e.delta for e in s if e.type == "response.output_text.delta"]
            response = s.get_final_response()
        assert "".join(deltas) == response.output_text
    else:
        response = client.responses.create(model="gpt-x", input="Hi")
    assert response.usage is not None
    return response.output_text, (response.usage.input_tokens, response.usage.output_tokens)


def ask_gemini(proxy: RunningProxy, stream: bool) -> Got:
    client = genai_client(proxy)
    if stream:
        chunks = list(client.models.generate_content_stream(model="gemini-x", contents="Hi"))
        text, u = "".join(c.text or "" for c in chunks), chunks[-1].usage_metadata
    else:
        result = client.models.generate_content(model="gemini-x", contents="Hi")
        text, u = result.text or "", result.usage_metadata
    assert u is not None
    output = (u.candidates_token_count or 0) + (u.thoughts_token_count or 0)
    return text, (u.prompt_token_count or 0, output)


ASK: dict[str, Callable[[RunningProxy, bool], Got]] = {
    "anthropic": ask_anthropic,
    "openai": ask_openai,
    "openai-responses": ask_responses,
    "gemini": ask_gemini,
}


@pytest.mark.parametrize(("client", "up"), PAIRS, ids=PAIR_IDS)
def test_sdk_gets_plain_and_streamed_answers_from_another_dialect(client: str, up: str) -> None:
    side = UPSTREAMS[up]
    fake = FakeUpstream().then(json_file(STREAMS / side.plain), sse_file(STREAMS / side.stream))
    with proxy_thread(Upstream(provider=up, fake=fake, model=side.model)) as proxy:
        plain = ASK[client](proxy, False)
        streamed = ASK[client](proxy, True)
    assert plain == (said(up, (STREAMS / side.plain).read_bytes()), side.plain_usage)
    assert streamed == (said(up, (STREAMS / side.stream).read_bytes()), side.stream_usage)
    assert [path_of(r) for r in fake.requests] == [side.path(False), side.path(True)]
    asked, asked_stream = (upstream_seen(side, r) for r in fake.requests)
    if up != "gemini":  # Gemini streams by URL
        assert not asked.get("stream") and asked_stream["stream"] is True
    logged = [(line["stream"], line["model_sent"], line["output_tokens"]) for line in proxy.log]
    assert logged == [
        (False, side.model, side.plain_usage[1]),
        (True, side.model, side.stream_usage[1]),
    ]


# ---------------------------------------------------------------- Claude first, Gemini next

RATE_LIMITED = json_reply(
    {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Number of requests has exceeded"},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    },
    status=429,
    headers={"retry-after": "30", "anthropic-ratelimit-requests-remaining": "0"},
)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_sdk_served_by_gemini_when_anthropic_answers_429(stream: bool) -> None:
    claude = FakeUpstream().then(RATE_LIMITED)
    side = UPSTREAMS["gemini"]
    answer = sse_file(STREAMS / side.stream) if stream else json_file(STREAMS / side.plain)
    gemini = FakeUpstream().then(answer)
    with proxy_thread(
        Upstream(provider="anthropic", fake=claude, name="claude", priority=0),
        Upstream(provider="gemini", fake=gemini, name="gemini", priority=1, model=side.model),
        routing="{strategy: priority, backoff_base: 0, backoff_max: 0}",
    ) as proxy:
        text, usage = ask_anthropic(proxy, stream)
    sample = STREAMS / (side.stream if stream else side.plain)
    assert (text, usage) == (said("gemini", sample.read_bytes()), side.usage(stream))
    assert [path_of(r) for r in claude.requests] == ["/v1/messages"]
    assert json.loads(claude.requests[0].body)["model"] == "claude-x"  # asked as is, first
    assert [path_of(r) for r in gemini.requests] == [side.path(stream)]
    assert upstream_seen(side, gemini.requests[0])["contents"][0]["parts"] == [{"text": "Hi"}]
    [line] = proxy.log
    assert (line["upstream"], line["status"], line["stream"]) == ("gemini", 200, stream)
    tried = [(a["upstream"], a.get("status")) for a in line["attempts"]]
    assert tried == [("claude", 429), ("gemini", 200)]
