"""Request and response bodies translate between every directed pair of the four dialects.

Golden files: tests/data/translate/input/ holds one client body per dialect and case;
tests/data/translate/golden/ holds what each other dialect receives. They were generated
once with CCX_UPDATE_GOLDEN=1, reviewed against the provider docs, and are asserted here.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.dialects import Dialect
from core.errors import BadRequest
from core.translate import anthropic, api, common, gemini, openai_chat, openai_responses
from core.translate import canonical as c
from core.translate.estimate import estimate_count_tokens

DATA = pathlib.Path(__file__).parent / "data" / "translate"
UPDATE = os.environ.get("CCX_UPDATE_GOLDEN") == "1"
DIALECTS = list(Dialect)
PAIRS = [(s, d) for s in DIALECTS for d in DIALECTS if s != d]
MODULES: dict[Dialect, Any] = {
    Dialect.ANTHROPIC: anthropic,
    Dialect.OPENAI_CHAT: openai_chat,
    Dialect.OPENAI_RESPONSES: openai_responses,
    Dialect.GEMINI: gemini,
}


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def check_golden(name: str, actual: Any) -> None:
    path = DATA / "golden" / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
    assert actual == json.loads(path.read_text()), name


def translated_or_error(fn: Any, **kw: Any) -> Any:
    try:
        return fn(**kw)
    except BadRequest as exc:
        return {"BadRequest": exc.message}


# ---------------------------------------------------------------- goldens: 12 pairs each
@pytest.mark.parametrize("case", ["tools", "params"])
@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=[f"{s}-to-{d}" for s, d in PAIRS])
def test_request_goldens(case: str, src: Dialect, dst: Dialect) -> None:
    body = load(f"input/request.{case}.{src}.json")
    out = translated_or_error(
        api.translate_request, body=body, src=src, dst=dst, model="up-model", client_model="cm"
    )
    check_golden(f"request.{case}.{src}--{dst}.json", out)


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=[f"{s}-to-{d}" for s, d in PAIRS])
def test_response_goldens(src: Dialect, dst: Dialect) -> None:
    body = load(f"input/response.{src}.json")
    out = api.translate_response(body, src=src, dst=dst, client_model="client-model")
    check_golden(f"response.{src}--{dst}.json", out)


# ---------------------------------------------------------------- the stories behind them
def test_tool_round_trip_pairs_ids_and_names_for_gemini() -> None:
    """Claude Code's parallel calls reach Gemini as functionCall/functionResponse pairs."""
    body = load("input/request.tools.anthropic.json")
    out = api.translate_request(
        body, src=Dialect.ANTHROPIC, dst=Dialect.GEMINI, model="gemini-2.5-pro", client_model="x"
    )
    model_turn, results = out["contents"][1], out["contents"][2]
    calls = [p["functionCall"] for p in model_turn["parts"] if "functionCall" in p]
    answers = [p["functionResponse"] for p in results["parts"]]
    assert [(c["id"], c["name"]) for c in calls] == [
        ("toolu_01", "read_file"),
        ("toolu_02", "list_dir"),
    ]
    assert [(a["id"], a["name"]) for a in answers] == [
        ("toolu_01", "read_file"),
        ("toolu_02", "list_dir"),
    ]
    assert answers[1]["response"] == {"error": "no such folder"}
    # The Anthropic thinking signature cannot be replayed to Gemini: dropped, not forged.
    assert not any(p.get("thought") for p in model_turn["parts"])


def test_gemini_calls_without_ids_pair_by_name_and_order() -> None:
    body = load("input/request.tools.gemini.json")
    out = api.translate_request(
        body, src=Dialect.GEMINI, dst=Dialect.OPENAI_CHAT, model="gpt-5", client_model="g"
    )
    assistant = next(m for m in out["messages"] if m.get("tool_calls"))
    tools = [m for m in out["messages"] if m["role"] == "tool"]
    assert [t["id"] for t in assistant["tool_calls"]] == ["call_0", "call_1"]
    assert [t["tool_call_id"] for t in tools] == ["call_0", "call_1"]
    assert json.loads(tools[1]["content"]) == {"entries": ["main.py"]}


def test_gemini_signature_survives_a_trip_through_an_anthropic_client() -> None:
    """Gemini 3 needs the call's thoughtSignature back; the Anthropic client carries it."""
    resp = api.translate_response(
        load("input/response.gemini.json"),
        src=Dialect.GEMINI,
        dst=Dialect.ANTHROPIC,
        client_model="claude",
    )
    tool_use = next(b for b in resp["content"] if b["type"] == "tool_use")
    assert tool_use["id"].startswith("call_0" + common.SIG_SEP)
    follow_up = {
        "model": "claude",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": resp["content"]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": tool_use["id"], "content": "ok"}
                ],
            },
        ],
    }
    out = api.translate_request(
        follow_up, src=Dialect.ANTHROPIC, dst=Dialect.GEMINI, model="gemini-3-pro", client_model="c"
    )
    call_part = next(p for p in out["contents"][1]["parts"] if "functionCall" in p)
    assert call_part["thoughtSignature"] == "Q2lRQmNhbGxzaWc="
    assert call_part["functionCall"]["id"] == "call_0"
    assert out["contents"][2]["parts"][0]["functionResponse"]["id"] == "call_0"
    # Sent to OpenAI instead, the id is the plain one (OpenAI limits id length).
    chat = api.translate_request(
        follow_up, src=Dialect.ANTHROPIC, dst=Dialect.OPENAI_CHAT, model="gpt", client_model="c"
    )
    assert chat["messages"][1]["tool_calls"][0]["id"] == "call_0"


def test_openai_reasoning_replays_to_openai_after_an_anthropic_client() -> None:
    resp = api.translate_response(
        load("input/response.openai-responses.json"),
        src=Dialect.OPENAI_RESPONSES,
        dst=Dialect.ANTHROPIC,
        client_model="claude",
    )
    thinking = resp["content"][0]
    assert thinking == {
        "type": "thinking",
        "thinking": "Two files to read.",
        "signature": "ccx:openai:gAAAAopenaienc",
    }
    follow_up = {
        "model": "claude",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [thinking]},
        ],
    }
    to_openai = api.translate_request(
        follow_up,
        src=Dialect.ANTHROPIC,
        dst=Dialect.OPENAI_RESPONSES,
        model="gpt-5",
        client_model="c",
    )
    assert to_openai["input"][1]["encrypted_content"] == "gAAAAopenaienc"
    to_gemini = api.translate_request(
        follow_up,
        src=Dialect.ANTHROPIC,
        dst=Dialect.GEMINI,
        model="gemini-2.5-pro",
        client_model="c",
    )
    assert to_gemini["contents"][1]["parts"] == [{"text": ""}]  # not replayable there


def test_openai_reasoning_replays_to_openai_after_a_gemini_client() -> None:
    resp = api.translate_response(
        load("input/response.openai-responses.json"),
        src=Dialect.OPENAI_RESPONSES,
        dst=Dialect.GEMINI,
        client_model="gemini-x",
    )
    thought = resp["candidates"][0]["content"]["parts"][0]
    assert thought["thought"] is True and thought["text"] == "Two files to read."
    follow_up = {
        "contents": [
            {"role": "user", "parts": [{"text": "go"}]},
            {"role": "model", "parts": [thought]},
            {"role": "user", "parts": [{"text": "and?"}]},
        ]
    }
    to_openai = api.translate_request(
        follow_up, src=Dialect.GEMINI, dst=Dialect.OPENAI_RESPONSES, model="gpt-5", client_model="c"
    )
    assert to_openai["input"][1]["encrypted_content"] == "gAAAAopenaienc"
    to_gemini = api.translate_request(
        follow_up, src=Dialect.GEMINI, dst=Dialect.GEMINI, model="gemini-2.5-pro", client_model="c"
    )
    assert "thoughtSignature" not in json.dumps(to_gemini)  # not replayable there


def test_gemini_client_gets_foreign_signatures_as_base64_and_returns_them() -> None:
    resp = api.translate_response(
        load("input/response.anthropic.json"),
        src=Dialect.ANTHROPIC,
        dst=Dialect.GEMINI,
        client_model="gemini-x",
    )
    thought = resp["candidates"][0]["content"]["parts"][0]
    assert thought["thought"] is True
    assert gemini.read_signature(thought["thoughtSignature"]) == "ccx:anthropic:EqQBanthropicsig"
    back = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}, resp["candidates"][0]["content"]]
    }
    out = api.translate_request(
        back, src=Dialect.GEMINI, dst=Dialect.ANTHROPIC, model="claude", client_model="g"
    )
    assert out["messages"][1]["content"][0]["signature"] == "EqQBanthropicsig"


def test_openai_streaming_request_always_asks_for_usage() -> None:
    body = load("input/request.params.openai.json")
    assert body["stream_options"] == {"include_usage": False}
    for src in (Dialect.ANTHROPIC, Dialect.GEMINI, Dialect.OPENAI_RESPONSES):
        out = api.translate_request(
            load(f"input/request.params.{src}.json"),
            src=src,
            dst=Dialect.OPENAI_CHAT,
            model="gpt",
            client_model="c",
        )
        assert out["stream"] is True
        assert out["stream_options"] == {"include_usage": True}


def test_usage_counts_every_prompt_token_once() -> None:
    resp = api.translate_response(
        load("input/response.anthropic.json"),
        src=Dialect.ANTHROPIC,
        dst=Dialect.OPENAI_CHAT,
        client_model="gpt",
    )
    assert resp["usage"]["prompt_tokens"] == 420  # 100 fresh + 20 written + 300 read
    assert resp["usage"]["prompt_tokens_details"] == {
        "cached_tokens": 300,
        "cache_write_tokens": 20,
    }
    back = api.translate_response(
        resp, src=Dialect.OPENAI_CHAT, dst=Dialect.ANTHROPIC, client_model="c"
    )
    assert back["usage"] == {
        "input_tokens": 100,
        "output_tokens": 50,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 300,
    }


# ---------------------------------------------------------------- what cannot translate
BAD_REQUESTS = [
    (
        Dialect.ANTHROPIC,
        {
            "model": "m",
            "max_tokens": 9,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "x"},
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBE",
                            },
                        },
                    ],
                }
            ],
        },
        "messages[0].content[1]: document blocks",
    ),
    (
        Dialect.ANTHROPIC,
        {
            "model": "m",
            "max_tokens": 9,
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "file", "file_id": "file_1"}}],
                }
            ],
        },
        "messages[0].content[0].source: 'file' images",
    ),
    (Dialect.OPENAI_CHAT, {"model": "m", "n": 2, "messages": []}, "n: only one choice"),
    (
        Dialect.OPENAI_CHAT,
        {"model": "m", "messages": [], "response_format": {"type": "grammar"}},
        "response_format.type: 'grammar'",
    ),
    (
        Dialect.OPENAI_CHAT,
        {
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
        },
        "messages[0].content[0]: input_audio parts",
    ),
    (
        Dialect.OPENAI_RESPONSES,
        {"model": "m", "input": "hi", "previous_response_id": "resp_1"},
        "previous_response_id: server-side state",
    ),
    (
        Dialect.OPENAI_RESPONSES,
        {"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]},
        "input[0]: item_reference items",
    ),
    (
        Dialect.OPENAI_RESPONSES,
        {"model": "m", "input": "hi", "text": {"format": {"type": "grammar"}}},
        "text.format.type: 'grammar'",
    ),
    (
        Dialect.GEMINI,
        {
            "contents": [],
            "generationConfig": {
                "responseMimeType": "text/x.enum",
                "responseSchema": {"type": "STRING", "enum": ["a", "b"]},
            },
        },
        "generationConfig.responseMimeType: text/x.enum",
    ),
    (Dialect.GEMINI, {"contents": [], "cachedContent": "cachedContents/1"}, "cachedContent"),
    (
        Dialect.GEMINI,
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [{"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}],
                }
            ]
        },
        "contents[0].parts[0]: application/pdf data",
    ),
    (
        Dialect.GEMINI,
        {
            "contents": [],
            "toolConfig": {
                "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["a", "b"]}
            },
        },
        "allowedFunctionNames",
    ),
    (
        Dialect.GEMINI,
        {"contents": [{"role": "user", "parts": [{"executableCode": {"code": "1"}}]}]},
        "contents[0].parts[0]: executableCode parts",
    ),
]


@pytest.mark.parametrize(("src", "body", "expected"), BAD_REQUESTS)
def test_untranslatable_requests_name_the_field(
    src: Dialect, body: dict[str, Any], expected: str
) -> None:
    dst = Dialect.OPENAI_CHAT if src != Dialect.OPENAI_CHAT else Dialect.ANTHROPIC
    with pytest.raises(BadRequest) as info:
        api.translate_request(body, src=src, dst=dst, model="up", client_model="c")
    assert expected in info.value.message
    assert info.value.status == 400


def test_stop_sequences_cannot_reach_a_responses_upstream() -> None:
    with pytest.raises(BadRequest, match="stop_sequences"):
        api.translate_request(
            load("input/request.params.anthropic.json"),
            src=Dialect.ANTHROPIC,
            dst=Dialect.OPENAI_RESPONSES,
            model="gpt",
            client_model="c",
        )


def test_a_tool_result_without_its_call_cannot_reach_gemini() -> None:
    body = {"model": "m", "messages": [{"role": "tool", "tool_call_id": "call_9", "content": "x"}]}
    with pytest.raises(BadRequest, match=r"call_9.*function name"):
        api.translate_request(
            body, src=Dialect.OPENAI_CHAT, dst=Dialect.GEMINI, model="g", client_model="c"
        )


# ---------------------------------------------------------------- gemini field spellings
# What google-genai 3.6.1 put on the wire for one generate_content call (captured against
# a local server): proto JSON accepts both spellings and the SDK mixes them.
GOOGLE_GENAI_BODY: dict[str, Any] = {
    "contents": [
        {
            "parts": [{"text": "hi"}, {"inlineData": {"data": "iVBORw==", "mime_type": "image/png"}}],
            "role": "user",
        },
        {
            "parts": [
                {"text": "t", "thought": True, "thoughtSignature": "c2lnMQ=="},
                {"functionCall": {"id": "c1", "args": {"a_b": 1}, "name": "f"}, "thoughtSignature": "c2lnMg=="},
            ],
            "role": "model",
        },
        {"parts": [{"functionResponse": {"id": "c1", "name": "f", "response": {"output": "ok"}}}], "role": "user"},
    ],
    "systemInstruction": {"parts": [{"text": "be nice"}], "role": "user"},
    "tools": [
        {
            "functionDeclarations": [
                {
                    "description": "d",
                    "name": "f",
                    "parameters_json_schema": {"type": "object", "properties": {"a_b": {"type": "integer"}}},
                },
                {
                    "name": "g",
                    "parameters": {
                        "properties": {"max_len": {"max_length": 3, "type": "STRING"}},
                        "type": "OBJECT",
                    },
                },
            ]
        }
    ],
    "toolConfig": {"functionCallingConfig": {"allowedFunctionNames": ["f"], "mode": "ANY"}},
    "generationConfig": {
        "temperature": 0.1,
        "maxOutputTokens": 100,
        "stopSequences": ["x"],
        "thinkingConfig": {"include_thoughts": True, "thinking_budget": 1024},
    },
}  # fmt: skip


def _snake_case(value: Any) -> Any:
    """Every field name in snake_case, user data (args, response, schemas) untouched."""
    from core.translate.gemini_fields import OPAQUE

    if isinstance(value, list):
        return [_snake_case(v) for v in value]
    if not isinstance(value, dict):
        return value
    snake = {k: "".join("_" + ch.lower() if ch.isupper() else ch for ch in k) for k in value}
    return {
        snake[k]: v if k in OPAQUE or k == "parameters" else _snake_case(v)
        for k, v in value.items()
    }


def test_gemini_requests_read_the_same_in_either_field_spelling() -> None:
    req = gemini.read_request(GOOGLE_GENAI_BODY, model="g")
    assert req.system == (c.Text(text="be nice"),)
    assert req.messages[0].parts[1] == c.Image(media_type="image/png", data="iVBORw==")
    assert req.tools[0].parameters == {"type": "object", "properties": {"a_b": {"type": "integer"}}}
    # an OpenAPI schema: keywords renamed, the property name `max_len` kept
    assert req.tools[1].parameters == {
        "type": "object",
        "properties": {"max_len": {"type": "string", "maxLength": 3}},
    }
    assert req.reasoning == c.ReasoningConfig(budget_tokens=1024, include_thoughts=True)
    call = req.messages[1].parts[1]
    assert isinstance(call, c.ToolCall) and json.loads(call.arguments) == {"a_b": 1}
    assert call.signature == "c2lnMg=="
    assert req.tool_choice == c.ToolChoice(mode="tool", name="f")
    all_snake = _snake_case(GOOGLE_GENAI_BODY)
    assert (
        "system_instruction" in all_snake
        and "function_call" in all_snake["contents"][1]["parts"][1]
    )
    assert gemini.read_request(all_snake, model="g") == req
    to_claude = api.translate_request(
        all_snake, src=Dialect.GEMINI, dst=Dialect.ANTHROPIC, model="claude", client_model="g"
    )
    assert to_claude["system"] == "be nice"
    assert to_claude["tool_choice"] == {"type": "tool", "name": "f"}


def test_gemini_count_tokens_reads_snake_case_too() -> None:
    body = {
        "generate_content_request": {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
    }
    out = api.count_tokens_request(body, src=Dialect.GEMINI, dst=Dialect.ANTHROPIC, model="claude")
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    assert estimate_count_tokens(body, src=Dialect.GEMINI) > 3


def test_a_streamed_thought_replayed_by_a_gemini_client_is_one_signed_thought() -> None:
    """Streams give thought text first and the signature last; the signature covers all."""
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "q"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "Think ", "thought": True},
                    {"text": "more.", "thought": True},
                    {"text": "", "thought": True, "thoughtSignature": "c2ln"},
                    {"text": "Answer", "thoughtSignature": "dGV4dHNpZw=="},
                ],
            },
        ]
    }
    parts = gemini.read_request(body, model="g").messages[1].parts
    assert parts == (
        c.Reasoning(text="Think more.", signature="ccx:gemini:c2ln"),
        c.Reasoning(signature="ccx:gemini:dGV4dHNpZw=="),
        c.Text(text="Answer"),
    )
    back = gemini.write_request(gemini.read_request(body, model="g"), model="gemini-3-pro")
    assert back["contents"][1]["parts"] == [
        {"thought": True, "text": "Think more.", "thoughtSignature": "c2ln"},
        {"text": "Answer", "thoughtSignature": "dGV4dHNpZw=="},
    ]


# ---------------------------------------------------------------- errors and count_tokens
def test_upstream_errors_become_the_client_dialect_error_with_the_message() -> None:
    gemini_429 = json.dumps(
        {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}
    ).encode()
    out = json.loads(
        api.translate_error(429, gemini_429, src=Dialect.GEMINI, dst=Dialect.ANTHROPIC)
    )
    assert out == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Quota exceeded"},
    }
    overloaded = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    out = json.loads(
        api.translate_error(529, overloaded, src=Dialect.ANTHROPIC, dst=Dialect.OPENAI_CHAT)
    )
    assert out["error"]["message"] == "Overloaded"
    html = b"<html>502 Bad Gateway</html>"
    out = json.loads(api.translate_error(502, html, src=Dialect.OPENAI_CHAT, dst=Dialect.GEMINI))
    assert out["error"]["message"] == "<html>502 Bad Gateway</html>"
    assert out["error"]["code"] == 502


def test_count_tokens_bodies_map_between_anthropic_and_gemini() -> None:
    body = {
        "model": "claude",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi"}],
    }
    out = api.count_tokens_request(
        body, src=Dialect.ANTHROPIC, dst=Dialect.GEMINI, model="gemini-2.5-pro"
    )
    inner = out["generateContentRequest"]
    assert inner["model"] == "models/gemini-2.5-pro"
    assert inner["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert inner["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    back = api.count_tokens_request(
        {"contents": inner["contents"]}, src=Dialect.GEMINI, dst=Dialect.ANTHROPIC, model="claude"
    )
    assert back == {
        "model": "claude",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }
    assert api.count_tokens_response(
        {"totalTokens": 12}, src=Dialect.GEMINI, dst=Dialect.ANTHROPIC
    ) == {"input_tokens": 12}
    assert api.count_tokens_response(
        {"input_tokens": 7}, src=Dialect.ANTHROPIC, dst=Dialect.GEMINI
    ) == {"totalTokens": 7}


def test_local_estimate_follows_the_documented_rule() -> None:
    body = {
        "model": "m",
        "system": "abcd" * 10,
        "messages": [{"role": "user", "content": "x" * 40}],
    }
    # 3 primer + 4 system + 4 message + ceil(80 / 4)
    assert estimate_count_tokens(body, src=Dialect.ANTHROPIC) == 31
    with_tool = body | {"tools": [{"name": "t", "input_schema": {"type": "object"}}]}
    schema_chars = len("t") + len(json.dumps({"type": "object"}))
    assert estimate_count_tokens(with_tool, src=Dialect.ANTHROPIC) == 3 + 4 + 4 + 8 + -(
        -(80 + schema_chars) // 4
    )
    same = {
        "contents": [{"role": "user", "parts": [{"text": "x" * 40}]}],
        "systemInstruction": {"parts": [{"text": "abcd" * 10}]},
    }
    assert estimate_count_tokens(same, src=Dialect.GEMINI) == 31


# ---------------------------------------------------------------- property: A -> B -> A
TOOLS = (
    c.Tool(
        name="read_file",
        description="Read",
        parameters={"type": "object", "properties": {"path": {"type": "string"}}},
    ),
    c.Tool(name="run", parameters={"type": "object", "properties": {"cmd": {"type": "string"}}}),
)
words = st.text(alphabet="abc xyz", min_size=1, max_size=12).filter(lambda s: s.strip() == s and s)
images = st.one_of(
    st.builds(
        c.Image,
        media_type=st.sampled_from(["image/png", "image/jpeg"]),
        data=st.sampled_from(["iVBO", "AAAA"]),
    ),
    st.builds(c.Image, url=st.sampled_from(["https://x.test/a.png", "https://x.test/b.jpeg"])),
)


@st.composite
def conversations(draw: st.DrawFn) -> tuple[c.Message, ...]:
    messages: list[c.Message] = []
    pending: list[c.ToolCall] = []
    for turn in range(draw(st.integers(1, 3))):
        parts: list[c.Part] = [
            c.ToolResult(
                call_id=call.id,
                name=call.name,
                content=(c.Text(text=draw(words)),),
                is_error=draw(st.booleans()),
            )
            for call in pending
        ]
        parts.append(c.Text(text=draw(words)))
        if draw(st.booleans()):
            parts.append(draw(images))
        messages.append(c.Message(role="user", parts=tuple(parts)))
        reply: list[c.Part] = [c.Text(text=draw(words))] if draw(st.booleans()) else []
        pending = [
            c.ToolCall(
                id=f"call_{turn}_{i}", name=tool.name, arguments=json.dumps({"path": draw(words)})
            )
            for i, tool in enumerate(draw(st.lists(st.sampled_from(TOOLS), max_size=2)))
        ]
        reply += pending
        if reply:
            messages.append(c.Message(role="assistant", parts=tuple(reply)))
    return tuple(messages)


requests = st.builds(
    c.Request,
    model=st.just("m"),
    messages=conversations(),
    system=st.lists(st.builds(c.Text, text=words), max_size=2).map(tuple),
    tools=st.just(TOOLS),
    tool_choice=st.one_of(
        st.none(),
        st.builds(
            c.ToolChoice,
            mode=st.sampled_from(["auto", "any", "none"]),
            parallel=st.sampled_from([None, False]),
        ),
        st.builds(c.ToolChoice, mode=st.just("tool"), name=st.just("run")),
    ),
    max_tokens=st.integers(1, 4000),
    temperature=st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0])),
    top_p=st.one_of(st.none(), st.sampled_from([0.5, 1.0])),
    top_k=st.one_of(st.none(), st.integers(1, 50)),
    stop=st.lists(words, max_size=2).map(tuple),
    stream=st.booleans(),
    user=st.one_of(st.none(), words),
)


def normalise(req: c.Request, dialects: set[Dialect]) -> c.Request:
    """The canonical meaning, minus what the documented rules drop for these dialects."""
    openai = bool(dialects & {Dialect.OPENAI_CHAT, Dialect.OPENAI_RESPONSES})
    messages = []
    for msg in common.merge_same_role(req.messages):
        parts: list[c.Part] = []
        for p in msg.parts:
            if isinstance(p, c.Image) and p.url:
                p = c.Image(url=p.url)  # Gemini guesses a media type for URLs
            if isinstance(p, c.ToolCall):  # same arguments object, any JSON spacing
                p = c.ToolCall(id=p.id, name=p.name, arguments=json.dumps(json.loads(p.arguments)))
            if isinstance(p, c.ToolResult) and openai:
                p = c.ToolResult(call_id=p.call_id, name=p.name, content=p.content)  # no is_error
            if isinstance(p, c.Text) and parts and isinstance(parts[-1], c.Text):
                p = c.Text(text=parts.pop().text + p.text)  # chat joins adjacent texts
            parts.append(p)
        messages.append(c.Message(role=msg.role, parts=tuple(parts)))
    choice = req.tool_choice
    if choice and Dialect.GEMINI in dialects:
        choice = c.ToolChoice(mode=choice.mode, name=choice.name)  # no parallel flag
    system = "\n\n".join(t.text for t in req.system)
    return c.Request(
        model="m",
        messages=tuple(messages),
        system=(c.Text(text=system),) if system else (),
        tools=req.tools,
        tool_choice=choice,
        max_tokens=req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=None if openai else req.top_k,
        stop=req.stop,
        stream=req.stream and Dialect.GEMINI not in dialects,
        user=None if Dialect.GEMINI in dialects else req.user,
    )


def through(req: c.Request, dialect: Dialect) -> c.Request:
    body = MODULES[dialect].write_request(req, model="m")
    if dialect == Dialect.GEMINI:
        return gemini.read_request(json.loads(json.dumps(body)), model="m")
    return MODULES[dialect].read_request(json.loads(json.dumps(body)))


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=[f"{s}-via-{d}" for s, d in PAIRS])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=requests)
def test_request_translation_there_and_back_keeps_the_meaning(
    a: Dialect, b: Dialect, req: c.Request
) -> None:
    if Dialect.OPENAI_RESPONSES in (a, b):
        req = c.Request(
            **{f: getattr(req, f) for f in c.Request.__dataclass_fields__} | {"stop": ()}
        )
    start = through(req, a)  # what a client of dialect `a` means
    there_and_back = through(through(start, b), a)
    assert normalise(there_and_back, {a, b}) == normalise(start, {a, b})
