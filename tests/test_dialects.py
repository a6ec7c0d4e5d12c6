"""Same-dialect knowledge: routes, request parsing, errors, event classes, usage scanners.

Sample streams live in tests/data/streams/ with their expected facts in manifest.json.
"""

from __future__ import annotations

import itertools
import json
import pathlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.dialects import Dialect
from core.dialects.base import (
    EventKind,
    Inbound,
    Operation,
    Usage,
    join_query,
)
from core.dialects.gemini import GEMINI, JsonArrayFramer
from core.dialects.registry import (
    SPECS,
    Route,
    client_key,
    match_route,
    models_dialect,
    strip_auth_query,
)
from core.dialects.scan import TAIL_CAP
from core.errors import BadRequest, NotFound
from core.sse import SSEEvent, SSEParser

STREAMS = pathlib.Path(__file__).parent / "data" / "streams"
MANIFEST = json.loads((STREAMS / "manifest.json").read_text())
KINDS = [
    "invalid_request",
    "authentication",
    "not_found",
    "request_too_large",
    "rate_limited",
    "overloaded",
    "upstream",
    "upstream_timeout",
    "upstream_connect",
    "upstream_protocol",
    "internal",
]


def events_of(raw: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    return parser.feed(raw) + parser.close()


def splits(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(raw)) for c in cuts})
    bounds = [0, *points, len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds)]


def usage_dict(usage: Usage) -> dict[str, int | None]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }


# ---------------------------------------------------------------- routes
@pytest.mark.parametrize(
    ("path", "dialect", "operation", "path_model"),
    [
        ("/v1/messages", Dialect.ANTHROPIC, Operation.GENERATE, None),
        ("/v1/messages/count_tokens", Dialect.ANTHROPIC, Operation.COUNT_TOKENS, None),
        ("/v1/chat/completions", Dialect.OPENAI_CHAT, Operation.GENERATE, None),
        ("/chat/completions", Dialect.OPENAI_CHAT, Operation.GENERATE, None),
        ("/v1/responses", Dialect.OPENAI_RESPONSES, Operation.GENERATE, None),
        (
            "/v1beta/models/gemini-2.5-flash:generateContent",
            Dialect.GEMINI,
            Operation.GENERATE,
            "gemini-2.5-flash:generateContent",
        ),
        (
            "/v1/models/gemini-2.5-pro:streamGenerateContent",
            Dialect.GEMINI,
            Operation.GENERATE,
            "gemini-2.5-pro:streamGenerateContent",
        ),
        (
            "/v1beta/models/gemini-2.5-flash:countTokens",
            Dialect.GEMINI,
            Operation.COUNT_TOKENS,
            "gemini-2.5-flash:countTokens",
        ),
        (
            "/v1beta/models/models/gemini-2.0-flash:streamGenerateContent",
            Dialect.GEMINI,
            Operation.GENERATE,
            "models/gemini-2.0-flash:streamGenerateContent",
        ),
        (  # a model name with ':' and '/' ends at the last ':'; %-escapes are decoded
            "/v1beta/models/openrouter%2Fvendor/m:free:generateContent",
            Dialect.GEMINI,
            Operation.GENERATE,
            "openrouter/vendor/m:free:generateContent",
        ),
    ],
)
def test_routes_name_dialect_operation_and_gemini_model(
    path: str, dialect: Dialect, operation: Operation, path_model: str | None
) -> None:
    route = match_route("POST", path)
    assert route == Route(dialect=dialect, operation=operation, path_model=path_model)


def test_gemini_route_splits_model_and_stream_at_the_last_colon() -> None:
    route = match_route("POST", "/v1beta/models/vendor/m:free:streamGenerateContent")
    assert route is not None
    assert route.model == "vendor/m:free"
    assert route.stream is True
    plain = match_route("POST", "/v1/messages")
    assert plain is not None and plain.model is None and plain.stream is None


def test_routes_are_remembered_and_the_memory_is_bounded() -> None:
    from core.dialects import registry

    for i in range(3000):  # Gemini paths carry model names, which come from clients
        route = match_route("POST", f"/v1beta/models/m-{i}:generateContent")
        assert route is not None and route.model == f"m-{i}"
        assert match_route("GET", f"/v1beta/models/m-{i}:generateContent") is None
    assert registry._match_path.cache_info().currsize <= 1024
    assert match_route("POST", "/v1/messages") is match_route("POST", "/v1/messages")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/messages"),
        ("POST", "/v1/models"),
        ("POST", "/v1/embeddings"),
        ("POST", "/v1beta/models/gemini-2.5-flash:embedContent"),
        ("POST", "/v1beta/models/gemini-2.5-flash"),
        ("POST", "/v1beta/models/:generateContent"),
        ("POST", "/v2/messages"),
    ],
)
def test_paths_the_proxy_does_not_serve_are_not_routes(method: str, path: str) -> None:
    assert match_route(method, path) is None


def test_client_key_reads_every_dialects_credential() -> None:
    assert client_key([(b"x-api-key", b"sk-ant-1")], "") == "sk-ant-1"
    assert client_key([(b"authorization", b"Bearer sk-oai-2")], "") == "sk-oai-2"
    assert client_key([(b"authorization", b"bearer  sk-oai-3 ")], "") == "sk-oai-3"
    assert client_key([(b"x-goog-api-key", b"AIza4")], "") == "AIza4"
    assert client_key([], "alt=sse&key=AIza5") == "AIza5"
    assert client_key([(b"authorization", b"Basic dXNlcg==")], "") is None
    assert client_key([(b"user-agent", b"x")], "alt=sse") is None


def test_strip_auth_query_keeps_the_rest_byte_exact() -> None:
    assert strip_auth_query("key=AIza&alt=sse") == "alt=sse"
    assert strip_auth_query("beta=true") == "beta=true"
    assert strip_auth_query("a=%2F&key=x&b=1&keyx=2") == "a=%2F&b=1&keyx=2"
    assert strip_auth_query("key=only") == ""
    assert join_query("/v1/messages", "beta=true") == "/v1/messages?beta=true"
    assert join_query("/x:streamGenerateContent?alt=sse", "b=1") == (
        "/x:streamGenerateContent?alt=sse&b=1"
    )
    assert join_query("/v1/messages", "") == "/v1/messages"


def test_models_list_shape_follows_the_clients_credentials() -> None:
    assert models_dialect([(b"x-api-key", b"k")], "/v1/models", "") is Dialect.ANTHROPIC
    assert (
        models_dialect([(b"anthropic-version", b"2023-06-01")], "/v1/models", "")
        is Dialect.ANTHROPIC
    )
    assert models_dialect([(b"x-goog-api-key", b"k")], "/v1/models", "") is Dialect.GEMINI
    assert models_dialect([], "/v1/models", "key=k") is Dialect.GEMINI
    assert models_dialect([], "/v1beta/models", "") is Dialect.GEMINI
    assert models_dialect([(b"authorization", b"Bearer k")], "/v1/models", "") is (
        Dialect.OPENAI_CHAT
    )


# ---------------------------------------------------------------- requests
def test_anthropic_request_gives_model_stream_and_untouched_bytes() -> None:
    raw = b'{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[]}'
    inbound = SPECS[Dialect.ANTHROPIC].parse_request(Operation.GENERATE, None, "beta=true", raw)
    assert inbound.model == "claude-sonnet-4-5"
    assert inbound.stream is True
    assert inbound.raw_body is raw
    assert inbound.query == "beta=true"
    counted = SPECS[Dialect.ANTHROPIC].parse_request(Operation.COUNT_TOKENS, None, "", raw)
    assert counted.stream is False  # count_tokens never streams


def test_openai_requests_give_model_and_stream() -> None:
    chat = SPECS[Dialect.OPENAI_CHAT].parse_request(
        Operation.GENERATE, None, "", b'{"model":"gpt-4.1","messages":[{"role":"user"}]}'
    )
    assert (chat.model, chat.stream) == ("gpt-4.1", False)
    resp = SPECS[Dialect.OPENAI_RESPONSES].parse_request(
        Operation.GENERATE, None, "", b'{"model":"o4-mini","input":"hi","stream":true}'
    )
    assert (resp.model, resp.stream) == ("o4-mini", True)
    stored = SPECS[Dialect.OPENAI_RESPONSES].parse_request(
        Operation.GENERATE, None, "", b'{"prompt":{"id":"pmpt_1"},"input":[]}'
    )
    assert stored.model == ""  # the stored prompt carries the model


@pytest.mark.parametrize(
    ("path_model", "query", "stream", "sse", "forwarded"),
    [
        ("gemini-2.5-flash:generateContent", "", False, False, ""),
        ("gemini-2.5-flash:streamGenerateContent", "alt=sse", True, True, ""),
        ("gemini-2.5-flash:streamGenerateContent", "key=AIza&x=1", True, False, "x=1"),
        ("gemini-2.5-flash:countTokens", "", False, False, ""),
    ],
)
def test_gemini_request_takes_model_and_stream_from_the_path(
    path_model: str, query: str, stream: bool, sse: bool, forwarded: str
) -> None:
    operation = Operation.COUNT_TOKENS if path_model.endswith("countTokens") else Operation.GENERATE
    raw = b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}'
    inbound = GEMINI.parse_request(operation, path_model, query, raw)
    assert inbound.model == "gemini-2.5-flash"
    assert (inbound.stream, inbound.gemini_sse, inbound.query) == (stream, sse, forwarded)


@pytest.mark.parametrize(
    ("dialect", "body", "words"),
    [
        (Dialect.ANTHROPIC, b"", "empty"),
        (Dialect.ANTHROPIC, b"{not json", "not valid JSON"),
        (Dialect.ANTHROPIC, b"\xff\xfe", "not valid JSON"),
        (Dialect.ANTHROPIC, b"[1,2]", "JSON object"),
        (Dialect.ANTHROPIC, b'{"messages":[]}', "'model'"),
        (Dialect.ANTHROPIC, b'{"model":"","messages":[]}', "'model'"),
        (Dialect.ANTHROPIC, b'{"model":7,"messages":[]}', "'model'"),
        (Dialect.ANTHROPIC, b'{"model":"m","messages":{}}', "'messages' must be a list"),
        (Dialect.ANTHROPIC, b'{"model":"m"}', "'messages'"),
        (Dialect.ANTHROPIC, b'{"model":"m","messages":[],"stream":"yes"}', "'stream'"),
        (Dialect.OPENAI_CHAT, b'{"model":"m","messages":"hi"}', "'messages' must be a list"),
        (Dialect.OPENAI_CHAT, b'{"messages":[]}', "'model'"),
        (Dialect.OPENAI_RESPONSES, b'{"input":"hi"}', "'model'"),
        (Dialect.OPENAI_RESPONSES, b'{"model":"m","input":{"a":1}}', "'input'"),
        (Dialect.GEMINI, b'{"contents":{}}', "'contents' must be a list"),
        (Dialect.GEMINI, b"null", "JSON object"),
    ],
)
def test_bad_requests_say_what_is_wrong(dialect: Dialect, body: bytes, words: str) -> None:
    path_model = "gemini-2.5-flash:generateContent" if dialect is Dialect.GEMINI else None
    with pytest.raises(BadRequest, match=words):
        SPECS[dialect].parse_request(Operation.GENERATE, path_model, "", body)


def test_gemini_request_without_a_model_in_the_path_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="model"):
        GEMINI.parse_request(Operation.GENERATE, None, "", b'{"contents":[]}')


@pytest.mark.parametrize(
    "dialect", [Dialect.ANTHROPIC, Dialect.OPENAI_CHAT, Dialect.OPENAI_RESPONSES]
)
def test_with_model_keeps_the_bytes_unless_the_model_changes(dialect: Dialect) -> None:
    raw = b'{ "messages": [], "input": "h\\u00e9", "model" : "alias",  "stream": false }'
    spec = SPECS[dialect]
    inbound = spec.parse_request(Operation.GENERATE, None, "", raw)
    assert spec.with_model(inbound, "alias") is raw
    renamed = spec.with_model(inbound, "claude-real-1")
    assert json.loads(renamed) == {**json.loads(raw), "model": "claude-real-1"}
    assert list(json.loads(renamed)) == ["messages", "input", "model", "stream"]  # order kept
    assert "hé".encode() in renamed  # compact, non-ASCII kept as UTF-8


def test_gemini_with_model_never_touches_the_body() -> None:
    raw = b'{"contents": []}'
    inbound = GEMINI.parse_request(Operation.GENERATE, "alias:generateContent", "", raw)
    assert GEMINI.with_model(inbound, "gemini-2.5-pro") is raw


def test_upstream_paths_and_auth_headers() -> None:
    a, c, r, g = (SPECS[d] for d in Dialect)
    assert a.upstream_path(Operation.GENERATE, "m", True) == "/v1/messages"
    assert a.upstream_path(Operation.COUNT_TOKENS, "m", False) == "/v1/messages/count_tokens"
    assert c.upstream_path(Operation.GENERATE, "m", True) == "/chat/completions"
    with pytest.raises(NotFound):
        c.upstream_path(Operation.COUNT_TOKENS, "m", False)
    assert r.upstream_path(Operation.GENERATE, "m", True) == "/responses"
    assert r.upstream_path(Operation.COUNT_TOKENS, "m", False) == "/responses/input_tokens"
    assert g.upstream_path(Operation.GENERATE, "gemini-2.5-flash", True) == (
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert g.upstream_path(Operation.GENERATE, "models/gemini-2.5-flash", False) == (
        "/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert g.upstream_path(Operation.COUNT_TOKENS, "tunedModels/my-1", False) == (
        "/v1beta/tunedModels/my-1:countTokens"
    )
    assert a.auth_headers("sk-a") == [(b"x-api-key", b"sk-a")]
    assert c.auth_headers("sk-o") == [(b"authorization", b"Bearer sk-o")]
    assert r.auth_headers("sk-o") == [(b"authorization", b"Bearer sk-o")]
    assert g.auth_headers("AIza") == [(b"x-goog-api-key", b"AIza")]


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("kind", KINDS)
def test_error_bodies_have_each_dialects_shape(kind: str) -> None:
    anthropic = json.loads(SPECS[Dialect.ANTHROPIC].error_body(400, kind, "why"))
    assert anthropic["type"] == "error" and anthropic["error"]["message"] == "why"
    assert anthropic["error"]["type"] in {
        "invalid_request_error",
        "authentication_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "overloaded_error",
        "api_error",
        "timeout_error",
    }
    for dialect in (Dialect.OPENAI_CHAT, Dialect.OPENAI_RESPONSES):
        error = json.loads(SPECS[dialect].error_body(400, kind, "why"))["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["param"] is None
    gemini = json.loads(GEMINI.error_body(418, kind, "why"))["error"]
    assert gemini["code"] == 418 and gemini["message"] == "why"
    assert gemini["status"].isupper()


def test_error_types_per_kind_are_the_ones_sdks_expect() -> None:
    def anthropic(kind: str) -> str:
        return str(json.loads(SPECS[Dialect.ANTHROPIC].error_body(0, kind, "m"))["error"]["type"])

    def gemini(kind: str) -> str:
        return str(json.loads(GEMINI.error_body(0, kind, "m"))["error"]["status"])

    def openai(kind: str) -> tuple[str, str | None]:
        e = json.loads(SPECS[Dialect.OPENAI_CHAT].error_body(0, kind, "m"))["error"]
        return e["type"], e["code"]

    assert anthropic("rate_limited") == "rate_limit_error"
    assert anthropic("overloaded") == "overloaded_error"
    assert anthropic("upstream_timeout") == "timeout_error"
    assert anthropic("upstream_connect") == "api_error"
    assert anthropic("request_too_large") == "request_too_large"
    assert gemini("rate_limited") == "RESOURCE_EXHAUSTED"
    assert gemini("authentication") == "UNAUTHENTICATED"
    assert gemini("upstream_timeout") == "DEADLINE_EXCEEDED"
    assert gemini("internal") == "INTERNAL"
    assert openai("invalid_request") == ("invalid_request_error", None)
    assert openai("rate_limited") == ("rate_limit_exceeded", "rate_limit_exceeded")
    assert openai("upstream")[0] == "server_error"


@pytest.mark.parametrize("dialect", list(Dialect))
def test_error_events_parse_and_classify_as_errors(dialect: Dialect) -> None:
    spec = SPECS[dialect]
    raw = spec.error_event("overloaded", "upstream went away")
    [event] = events_of(raw)
    assert spec.classify_event(event) is EventKind.ERROR
    assert spec.error_reason(event) == "overloaded_error"
    assert "upstream went away" in event.data


def test_error_event_wire_forms() -> None:
    [a] = events_of(SPECS[Dialect.ANTHROPIC].error_event("rate_limited", "slow down"))
    assert a.event == "error"
    assert json.loads(a.data) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
    [c] = events_of(SPECS[Dialect.OPENAI_CHAT].error_event("upstream", "gone"))
    assert c.event is None and json.loads(c.data)["error"]["type"] == "server_error"
    [r] = events_of(SPECS[Dialect.OPENAI_RESPONSES].error_event("upstream_timeout", "slow"))
    assert r.event == "error"
    assert json.loads(r.data) == {
        "type": "error",
        "code": "upstream_timeout",
        "message": "slow",
        "param": None,
        "sequence_number": 0,
    }
    [g] = events_of(GEMINI.error_event("upstream_timeout", "slow"))
    assert g.data.startswith('{"error":')  # what google-genai looks for
    assert json.loads(g.data)["error"] == {
        "code": 504,
        "message": "slow",
        "status": "DEADLINE_EXCEEDED",
    }


# ---------------------------------------------------------------- stream events
def preflight(dialect: Dialect, raw: bytes) -> tuple[str, list[SSEEvent]]:
    """What a preflight hold decides: the first non-META event's class (and the events)."""
    spec = SPECS[dialect]
    events = events_of(raw)
    for event in events:
        kind = spec.classify_event(event)
        if kind is not EventKind.META:
            return kind.value, [event]
    return "none", []


@pytest.mark.parametrize("name", sorted(MANIFEST["streams"]))
def test_preflight_sees_content_or_error_as_the_manifest_says(name: str) -> None:
    facts = MANIFEST["streams"][name]
    dialect = Dialect(facts["dialect"])
    decided, [event] = preflight(dialect, (STREAMS / name).read_bytes())
    assert decided == facts["preflight"]
    if decided == "error":
        assert SPECS[dialect].error_reason(event) == facts["error_reason"]


@pytest.mark.parametrize(
    ("dialect", "event", "data", "kind"),
    [
        (Dialect.ANTHROPIC, "message_start", '{"type":"message_start","message":{}}', "meta"),
        (Dialect.ANTHROPIC, "ping", '{"type": "ping"}', "meta"),
        (Dialect.ANTHROPIC, None, '{"type":"content_block_start","index":0}', "content"),
        (Dialect.ANTHROPIC, "message_stop", '{"type":"message_stop"}', "end"),
        (Dialect.OPENAI_CHAT, None, '{"choices":[{"delta":{"role":"assistant"}}]}', "meta"),
        (Dialect.OPENAI_CHAT, None, '{"choices":[{"delta":{"content":""}}]}', "meta"),
        (Dialect.OPENAI_CHAT, None, '{"choices":[{"delta":{"refusal":"no"}}]}', "content"),
        (Dialect.OPENAI_CHAT, None, '{"choices":[{"delta":{},"finish_reason":"stop"}]}', "content"),
        (Dialect.OPENAI_CHAT, None, '{"choices":[],"usage":{"prompt_tokens":1}}', "meta"),
        (Dialect.OPENAI_CHAT, None, "[DONE]", "end"),
        (Dialect.OPENAI_RESPONSES, "response.queued", '{"type":"response.queued"}', "meta"),
        (Dialect.OPENAI_RESPONSES, None, '{"type":"response.output_text.delta"}', "content"),
        (Dialect.OPENAI_RESPONSES, "response.failed", '{"type":"response.failed"}', "error"),
        (Dialect.OPENAI_RESPONSES, "response.incomplete", "{}", "end"),
        (Dialect.GEMINI, None, '{"usageMetadata":{"promptTokenCount":3}}', "meta"),
        (Dialect.GEMINI, None, '{"candidates":[{"finishReason":"MAX_TOKENS"}]}', "content"),
        (Dialect.GEMINI, None, '{"promptFeedback":{"blockReason":"SAFETY"}}', "content"),
        (Dialect.GEMINI, None, '{"error":{"code":429,"status":"RESOURCE_EXHAUSTED"}}', "error"),
    ],
)
def test_classify_event_samples(dialect: Dialect, event: str | None, data: str, kind: str) -> None:
    assert SPECS[dialect].classify_event(SSEEvent(data=data, event=event)) == kind


def test_error_reasons_are_normalised_across_dialects() -> None:
    chat, resp = SPECS[Dialect.OPENAI_CHAT], SPECS[Dialect.OPENAI_RESPONSES]
    rate = '{"error":{"message":"m","type":"requests","param":null,"code":"rate_limit_exceeded"}}'
    assert chat.error_reason(SSEEvent(data=rate)) == "rate_limit_error"
    flat = '{"type":"error","code":"rate_limit_exceeded","message":"m","sequence_number":3}'
    assert resp.error_reason(SSEEvent(data=flat, event="error")) == "rate_limit_error"
    quota = '{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED"}}'
    assert GEMINI.error_reason(SSEEvent(data=quota)) == "rate_limit_error"
    odd = '{"type":"error","error":{"type":"billing_error","message":"m"}}'
    assert SPECS[Dialect.ANTHROPIC].error_reason(SSEEvent(data=odd)) == "billing_error"
    assert SPECS[Dialect.ANTHROPIC].error_reason(SSEEvent(data="garbage")) == "unknown_error"


# ---------------------------------------------------------------- usage and scanners
@pytest.mark.parametrize("name", sorted(MANIFEST["bodies"]))
def test_usage_from_non_stream_bodies(name: str) -> None:
    facts = MANIFEST["bodies"][name]
    usage = SPECS[Dialect(facts["dialect"])].usage_from_body((STREAMS / name).read_bytes())
    assert usage_dict(usage) == facts["usage"]


@pytest.mark.parametrize("dialect", list(Dialect))
@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"usage":"x"}', b'{"usage":{"a":1}}'])
def test_usage_from_a_bad_body_is_empty_and_never_raises(dialect: Dialect, body: bytes) -> None:
    assert SPECS[dialect].usage_from_body(body) == Usage()


STREAM_NAMES = sorted(MANIFEST["streams"])


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(STREAM_NAMES), cuts=st.lists(st.integers(0, 6000), max_size=40))
def test_scanners_find_usage_and_completion_in_any_split(name: str, cuts: list[int]) -> None:
    facts = MANIFEST["streams"][name]
    scanner = SPECS[Dialect(facts["dialect"])].stream_scanner()
    for chunk in splits((STREAMS / name).read_bytes(), cuts):
        scanner.feed(chunk)
    usage, completed = scanner.result()
    assert usage_dict(usage) == facts["usage"]
    assert completed is facts["completed"]


COMPLETE = [n for n in STREAM_NAMES if MANIFEST["streams"][n]["completed"]]


@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(COMPLETE), data=st.data())
def test_a_stream_cut_before_its_last_event_is_not_completed(name: str, data: Any) -> None:
    raw = (STREAMS / name).read_bytes()
    separator = b"\r\n\r\n" if b"\r\n" in raw else b"\n\n"
    last_start = max(raw.rstrip().rfind(separator), 0)  # where the final event begins
    cut = data.draw(st.integers(0, last_start))
    cuts = data.draw(st.lists(st.integers(0, cut), max_size=10))
    scanner = SPECS[Dialect(MANIFEST["streams"][name]["dialect"])].stream_scanner()
    for chunk in splits(raw[:cut], cuts):
        scanner.feed(chunk)
    assert scanner.result()[1] is False


def test_responses_scanner_finds_the_end_and_usage_of_a_completed_event_bigger_than_the_tail() -> (
    None
):
    spec = SPECS[Dialect.OPENAI_RESPONSES]
    text = "x" * (3 * TAIL_CAP)
    deltas = b"".join(
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"'
        + b"x" * 1000
        + b'"}\n\n'
        for _ in range(300)
    )
    completed = {
        "type": "response.completed",
        "sequence_number": 301,
        "response": {
            "output": [{"type": "message", "content": [{"type": "output_text", "text": text}]}],
            "usage": {"input_tokens": 10, "output_tokens": 70000},
            "metadata": {},
        },
    }
    raw = deltas + b"event: response.completed\ndata: " + json.dumps(completed).encode() + b"\n\n"
    scanner = spec.stream_scanner()
    for i in range(0, len(raw), 4096):
        scanner.feed(raw[i : i + 4096])
    usage, done = scanner.result()
    assert done is True
    assert (usage.input_tokens, usage.output_tokens) == (10, 70000)


# ---------------------------------------------------------------- gemini JSON array
@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(["gemini_text.sse", "gemini_function_call.sse"]),
    cuts=st.lists(st.integers(0, 3000), max_size=30),
)
def test_json_array_framer_output_is_the_chunks_as_a_json_array(name: str, cuts: list[int]) -> None:
    raw = (STREAMS / name).read_bytes()
    framer = JsonArrayFramer()
    out = b"".join(framer.feed(chunk) for chunk in splits(raw, cuts)) + framer.close()
    assert json.loads(out) == [json.loads(e.data) for e in events_of(raw)]
    assert out.startswith(b"[{") and out.endswith(b"\r\n]")


def test_json_array_framer_emits_each_chunk_as_soon_as_its_event_ends() -> None:
    framer = JsonArrayFramer()
    assert framer.feed(b'data: {"a":1}') == b""
    assert framer.feed(b"\r\n\r\n") == b'[{"a":1}\r\n'
    assert framer.feed(GEMINI.error_event("upstream", "cut")).startswith(b',{"error":')
    assert framer.close() == b"]"
    assert framer.close() == b""
    assert JsonArrayFramer().close() == b"[]"


# ---------------------------------------------------------------- estimates and models
def test_token_estimate_counts_text_and_skips_images_and_signatures() -> None:
    text = {"model": "m", "messages": [{"role": "user", "content": "a" * 400}]}
    assert SPECS[Dialect.ANTHROPIC].estimate_input_tokens(text) == 101
    image = {"type": "image", "source": {"type": "base64", "data": "A" * 100_000}}
    with_image = {"model": "m", "messages": [{"role": "user", "content": [image]}]}
    assert SPECS[Dialect.ANTHROPIC].estimate_input_tokens(with_image) < 10
    gemini = {"contents": [{"parts": [{"text": "b" * 40}, {"inlineData": {"data": "Z" * 9000}}]}]}
    assert GEMINI.estimate_input_tokens(gemini) == 11
    url = {"input": [{"type": "input_image", "image_url": "data:image/png;base64," + "Q" * 5000}]}
    assert SPECS[Dialect.OPENAI_RESPONSES].estimate_input_tokens(url) == 1


def test_models_bodies_have_each_dialects_list_shape() -> None:
    models = ["claude-sonnet-4-5", "gpt-4.1"]
    a = json.loads(SPECS[Dialect.ANTHROPIC].models_body(models))
    assert [m["id"] for m in a["data"]] == models and a["has_more"] is False
    assert a["first_id"] == "claude-sonnet-4-5" and a["data"][0]["type"] == "model"
    o = json.loads(SPECS[Dialect.OPENAI_CHAT].models_body(models))
    assert o["object"] == "list" and [m["id"] for m in o["data"]] == models
    g = json.loads(GEMINI.models_body(["gemini-2.5-flash", "models/gemini-2.5-pro"]))
    assert [m["name"] for m in g["models"]] == ["models/gemini-2.5-flash", "models/gemini-2.5-pro"]
    assert "streamGenerateContent" in g["models"][0]["supportedGenerationMethods"]
    assert json.loads(SPECS[Dialect.ANTHROPIC].models_body([]))["first_id"] is None


def test_every_dialect_has_a_spec_and_inbound_is_frozen() -> None:
    assert set(SPECS) == set(Dialect)
    assert all(SPECS[d].dialect is d for d in Dialect)
    inbound = Inbound(
        dialect=Dialect.GEMINI,
        operation=Operation.GENERATE,
        model="m",
        stream=False,
        body={},
        raw_body=b"{}",
    )
    with pytest.raises(AttributeError):
        inbound.model = "x"  # type: ignore[misc]
