"""Codex's free-form `apply_patch` answered by an upstream without free-form tools.

The request side turns the custom tool into a function with one string parameter
`input`; these tests follow the answer back: the upstream calls the function with
`{"input": patch}` and the client that defined the custom tool gets a custom call whose
input is the patch text, as a body and as a stream, whatever way the stream is split.
"""

from __future__ import annotations

import itertools
import json
import pathlib
from typing import Any

import pydantic
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import ResponseStreamEvent

from core.dialects import Dialect
from core.sse import SSEParser
from core.translate import api
from core.translate import canonical as c
from core.translate.custom_tools import InputDecoder, StreamRestorer, input_text
from core.translate.streams import StreamTranslator

AGENTS = pathlib.Path(__file__).parent / "data" / "translate" / "agents"
PATCH = (
    '*** Begin Patch\n*** Update File: src/app.py\n@@ def greet():\n-    print("hi")\n'
    "+    print('héllo 😀 \\\\ \\t done')\n*** End Patch\n"
)
APPLY_PATCH = frozenset({"apply_patch"})
RESPONSES_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)


def codex_request() -> dict[str, Any]:
    body: dict[str, Any] = json.loads((AGENTS / "codex.json").read_text())
    return body


def anthropic_answer(args: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_01Patch",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": "Patching greet()."},
            {"type": "tool_use", "id": "toolu_Patch1", "name": "apply_patch", "input": args},
            {
                "type": "tool_use",
                "id": "toolu_Shell1",
                "name": "shell",
                "input": {"command": ["ls"]},
            },
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 900, "output_tokens": 120},
    }


# ------------------------------------------------------------------ which tools are free-form
def test_codex_request_names_apply_patch_as_its_only_free_form_tool() -> None:
    assert api.custom_tool_names(codex_request(), src=Dialect.OPENAI_RESPONSES) == APPLY_PATCH


def test_chat_custom_tools_are_named_and_other_dialects_have_none() -> None:
    chat = {"tools": [{"type": "custom", "custom": {"name": "grep_raw"}}, {"type": "function"}]}
    assert api.custom_tool_names(chat, src=Dialect.OPENAI_CHAT) == {"grep_raw"}
    # Anthropic's "custom" tool type is an ordinary JSON-schema tool.
    anthropic = {"tools": [{"type": "custom", "name": "x", "input_schema": {}}]}
    assert api.custom_tool_names(anthropic, src=Dialect.ANTHROPIC) == frozenset()
    assert api.custom_tool_names({"tools": None}, src=Dialect.OPENAI_RESPONSES) == frozenset()


# ------------------------------------------------------------------ bodies
def test_apply_patch_from_anthropic_reaches_codex_as_a_custom_tool_call() -> None:
    out = api.translate_response(
        anthropic_answer({"input": PATCH}),
        src=Dialect.ANTHROPIC,
        dst=Dialect.OPENAI_RESPONSES,
        client_model="gpt-5-codex",
        custom_tools=APPLY_PATCH,
    )
    calls = [i for i in out["output"] if i["type"] != "message"]
    assert calls[0]["type"] == "custom_tool_call"
    assert calls[0]["call_id"] == "toolu_Patch1" and calls[0]["name"] == "apply_patch"
    assert calls[0]["input"] == PATCH
    assert calls[1]["type"] == "function_call"  # shell is an ordinary function
    assert json.loads(calls[1]["arguments"]) == {"command": ["ls"]}


def test_without_the_client_tool_names_the_call_stays_a_function_call() -> None:
    out = api.translate_response(
        anthropic_answer({"input": PATCH}),
        src=Dialect.ANTHROPIC,
        dst=Dialect.OPENAI_RESPONSES,
        client_model="m",
    )
    call = next(i for i in out["output"] if i.get("name") == "apply_patch")
    assert call["type"] == "function_call" and json.loads(call["arguments"]) == {"input": PATCH}


def test_gemini_answers_and_chat_clients_get_the_same_restoration() -> None:
    gemini_answer = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"functionCall": {"name": "apply_patch", "args": {"input": PATCH}}}],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5},
    }
    out = api.translate_response(
        gemini_answer,
        src=Dialect.GEMINI,
        dst=Dialect.OPENAI_CHAT,
        client_model="m",
        custom_tools=APPLY_PATCH,
    )
    (call,) = out["choices"][0]["message"]["tool_calls"]
    assert call["type"] == "custom"
    assert call["custom"] == {"name": "apply_patch", "input": PATCH}


def test_arguments_of_another_shape_become_the_input_text_unchanged() -> None:
    out = api.translate_response(
        anthropic_answer({"patch": PATCH}),
        src=Dialect.ANTHROPIC,
        dst=Dialect.OPENAI_RESPONSES,
        client_model="m",
        custom_tools=APPLY_PATCH,
    )
    call = next(i for i in out["output"] if i.get("name") == "apply_patch")
    assert call["type"] == "custom_tool_call"
    assert json.loads(call["input"]) == {"patch": PATCH}  # Codex reports it to the model


# ------------------------------------------------------------------ streams
def anthropic_stream(fragments: list[str]) -> bytes:
    """An Anthropic stream: a short text, then apply_patch with the given JSON fragments."""
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_01Patch",
                "type": "message",
                "role": "assistant",
                "model": "claude",
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": 900, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Patching."},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_Patch1",
                "name": "apply_patch",
                "input": {},
            },
        },
        *(
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": f},
            }
            for f in fragments
        ),
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 120},
        },
        {"type": "message_stop"},
    ]
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def split(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(text)), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if a < b]


def responses_events(raw: bytes) -> list[dict[str, Any]]:
    parser = SSEParser()
    out = []
    for e in parser.feed(raw) + parser.close():
        data = json.loads(e.data)
        RESPONSES_EVENT.validate_python(data)  # the official SDK can parse every event
        out.append(data)
    return out


def to_codex(upstream: bytes, custom_tools: frozenset[str] = APPLY_PATCH) -> list[dict[str, Any]]:
    t = StreamTranslator(
        src=Dialect.ANTHROPIC,
        dst=Dialect.OPENAI_RESPONSES,
        client_model="gpt-5-codex",
        created=0,
        custom_tools=custom_tools,
    )
    return responses_events(t.feed(upstream) + t.close())


def test_streamed_apply_patch_reaches_codex_as_custom_tool_call_events() -> None:
    args = json.dumps({"input": PATCH})
    # Cut inside escapes and inside the surrogate pair of the emoji.
    events = to_codex(anthropic_stream(split(args, list(range(3, len(args), 7)))))
    types = [e["type"] for e in events]
    added = [e for e in events if e["type"] == "response.output_item.added"][-1]
    assert added["item"]["type"] == "custom_tool_call"
    assert added["item"]["call_id"] == "toolu_Patch1" and added["item"]["name"] == "apply_patch"
    deltas = [e["delta"] for e in events if e["type"] == "response.custom_tool_call_input.delta"]
    assert len(deltas) > 3, "the patch streams as it arrives"
    assert "".join(deltas) == PATCH
    (done,) = [e for e in events if e["type"] == "response.custom_tool_call_input.done"]
    assert done["input"] == PATCH
    assert "response.function_call_arguments.delta" not in types
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert final["output"][-1] == {
        "id": "ctc_toolu_Patch1",
        "type": "custom_tool_call",
        "status": "completed",
        "call_id": "toolu_Patch1",
        "name": "apply_patch",
        "input": PATCH,
    }


def test_a_streamed_call_of_another_shape_is_decided_at_its_end() -> None:
    args = json.dumps({"note": "x", "input": PATCH})
    events = to_codex(anthropic_stream(split(args, [5, 20, 40])))
    (done,) = [e for e in events if e["type"] == "response.custom_tool_call_input.done"]
    assert done["input"] == PATCH


def test_without_custom_tools_the_stream_keeps_the_function_call() -> None:
    args = json.dumps({"input": PATCH})
    events = to_codex(anthropic_stream([args]), custom_tools=frozenset())
    item = events[-1]["response"]["output"][-1]
    assert item["type"] == "function_call" and json.loads(item["arguments"]) == {"input": PATCH}


def test_chat_clients_get_the_streamed_custom_call_shape() -> None:
    args = json.dumps({"input": PATCH})
    t = StreamTranslator(
        src=Dialect.ANTHROPIC,
        dst=Dialect.OPENAI_CHAT,
        client_model="m",
        created=0,
        custom_tools=APPLY_PATCH,
    )
    raw = t.feed(anthropic_stream(split(args, [4, 9, 30]))) + t.close()
    parser = SSEParser()
    calls = [
        call
        for e in parser.feed(raw)
        if e.data != "[DONE]"
        for choice in json.loads(e.data)["choices"]
        for call in choice["delta"].get("tool_calls") or ()
    ]
    assert calls[0]["type"] == "custom" and calls[0]["custom"]["name"] == "apply_patch"
    assert "".join(c["custom"]["input"] for c in calls) == PATCH
    assert all("function" not in c for c in calls)


def test_a_chat_upstream_streaming_custom_calls_reaches_codex_as_custom_calls() -> None:
    head = '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":0,"model":"g",'
    first = {
        "index": 0,
        "id": "call_P",
        "type": "custom",
        "custom": {"name": "apply_patch", "input": ""},
    }
    chunks = [
        {"tool_calls": [first]},
        {"tool_calls": [{"index": 0, "custom": {"input": PATCH[:20]}}]},
        {"tool_calls": [{"index": 0, "custom": {"input": PATCH[20:]}}]},
    ]
    raw = "".join(
        f'data: {head}"choices":[{{"index":0,"delta":{json.dumps(d)},"finish_reason":null}}]}}\n\n'
        for d in chunks
    )
    raw += f'data: {head}"choices":[{{"index":0,"delta":{{}},"finish_reason":"tool_calls"}}]}}\n\n'
    raw += "data: [DONE]\n\n"
    t = StreamTranslator(src=Dialect.OPENAI_CHAT, dst=Dialect.OPENAI_RESPONSES, client_model="m")
    events = responses_events(t.feed(raw.encode()) + t.close())
    item = events[-1]["response"]["output"][-1]
    assert item["type"] == "custom_tool_call" and item["input"] == PATCH


def test_a_call_still_open_at_finish_gives_its_input_before_the_finish() -> None:
    restorer = StreamRestorer(APPLY_PATCH)
    start = c.BlockStart(index=0, kind="tool_call", tool_id="t", tool_name="apply_patch")
    args = json.dumps({"x": 1, "input": PATCH})  # not the simple shape: decided at the end
    out = restorer.feed([start, c.ToolArgsDelta(index=0, partial_json=args)])
    assert out == [c.BlockStart(index=0, kind="tool_call", tool_id="t", tool_name="apply_patch",
                                tool_kind="custom")]  # fmt: skip
    finish = c.Finish(stop_reason=c.StopReason.TOOL_USE)
    assert restorer.feed([finish]) == [c.ToolArgsDelta(index=0, partial_json=PATCH), finish]


# ------------------------------------------------------------------ the incremental decoder
ARGS = st.one_of(
    st.text().map(lambda s: json.dumps({"input": s})),
    st.text().map(lambda s: json.dumps({"input": s}, ensure_ascii=False, indent=1)),
    st.builds(lambda s, n: json.dumps({"n": n, "input": s}), st.text(), st.integers()),
    st.sampled_from(["{}", "", "not json", '{"input": 3}', '{"in put": "a"}', '{"input": "cut']),
)


@settings(max_examples=300, deadline=None)
@given(args=ARGS, cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=12))
def test_decoding_split_arguments_gives_the_whole_input(args: str, cuts: list[int]) -> None:
    decoder = InputDecoder()
    out = "".join(decoder.feed(piece) for piece in split(args, cuts)) + decoder.close()
    if args == '{"input": "cut':
        assert out == "cut"  # cut short by max tokens: the whole characters that came
    else:
        assert out == (input_text(args) if args.strip() else "")
