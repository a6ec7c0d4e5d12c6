"""Coding agents' real request shapes survive translation to every other upstream dialect.

tests/data/translate/agents/ holds one request per agent, written from the agents' public
sources and docs in the shape they send mid-session (a tool loop, reasoning to replay):
Claude Code (Anthropic Messages), Codex CLI (OpenAI Responses), Gemini CLI (Gemini). For
each agent and each of the three other upstream dialects the translated body must be
valid for that API (its required structure; Gemini bodies are checked with google-genai's
own strict types) and keep the meaning: the same calls with the same ids, names and
arguments, every result paired with its call, the same tools. The degrade rules checked
here are the ones the README (Cross-dialect translation)'s "Agents" section documents.
"""

from __future__ import annotations

import itertools
import json
import pathlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from google.genai import types as gtypes

from core.dialects import Dialect
from core.errors import BadRequest
from core.translate import api
from core.translate.gemini import SKIP_SIGNATURE
from core.translate.gemini_schema import GEMINI_KEYWORDS

DATA = pathlib.Path(__file__).parent / "data" / "translate" / "agents"
AGENTS = {
    "claude-code": Dialect.ANTHROPIC,
    "codex": Dialect.OPENAI_RESPONSES,
    "gemini-cli": Dialect.GEMINI,
}
UPSTREAM_MODEL = {
    Dialect.ANTHROPIC: "claude-sonnet-4-5",
    Dialect.OPENAI_CHAT: "gpt-5",
    Dialect.OPENAI_RESPONSES: "gpt-5-codex",
    Dialect.GEMINI: "gemini-3-pro-preview",
}
CASES = [(agent, dst) for agent, src in AGENTS.items() for dst in Dialect if dst is not src]


def agent_body(agent: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((DATA / f"{agent}.json").read_text())
    return body


def translated(agent: str, dst: Dialect) -> dict[str, Any]:
    return api.translate_request(
        agent_body(agent),
        src=AGENTS[agent],
        dst=dst,
        model=UPSTREAM_MODEL[dst],
        client_model="agent-model",
    )


# ------------------------------------------------------------------ meaning, per dialect
@dataclass(kw_only=True)
class Meaning:
    """What a conversation says, whatever the dialect: asserted equal across translation."""

    system: list[str] = field(default_factory=list)  # the prompt's pieces, in order
    calls: list[tuple[str, str, Any]] = field(default_factory=list)  # id, name, arguments
    results: list[tuple[str, str]] = field(default_factory=list)  # call id, text
    tools: list[str] = field(default_factory=list)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [])


def anthropic_meaning(body: dict[str, Any]) -> Meaning:
    """Checks what the Messages API requires, and reads the meaning."""
    system = body.get("system")
    m = Meaning(system=[system] if isinstance(system, str) else [b["text"] for b in system or []])
    assert isinstance(body["max_tokens"], int) and body["max_tokens"] > 0
    roles = [msg["role"] for msg in body["messages"]]
    assert roles[0] == "user" and all(a != b for a, b in itertools.pairwise(roles))
    open_calls: set[str] = set()
    for msg in body["messages"]:
        blocks = msg["content"] if isinstance(msg["content"], list) else []
        kinds = [b["type"] for b in blocks]
        assert kinds == sorted(kinds, key=lambda k: k != "tool_result"), "results come first"
        for b in blocks:
            if b["type"] == "tool_use":
                m.calls.append((b["id"], b["name"], b["input"]))
                open_calls.add(b["id"])
            elif b["type"] == "tool_result":
                assert b["tool_use_id"] in open_calls, "a result answers an earlier call"
                m.results.append((b["tool_use_id"], _text(b["content"])))
    if "thinking" in body:
        assert 1024 <= body["thinking"]["budget_tokens"] < body["max_tokens"]
        assert body.get("temperature", 1) == 1 and "top_k" not in body
    m.tools = [t["name"] for t in body.get("tools", [])]
    assert all(isinstance(t.get("input_schema", {}), dict) for t in body.get("tools", []))
    return m


def chat_meaning(body: dict[str, Any]) -> Meaning:
    m = Meaning()
    open_calls: set[str] = set()
    for msg in body["messages"]:
        if msg["role"] == "system":
            m.system.append(msg["content"])
        for call in msg.get("tool_calls") or []:
            if call["type"] == "custom":
                args: Any = {"input": call["custom"]["input"]}
                m.calls.append((call["id"], call["custom"]["name"], args))
            else:
                args = json.loads(call["function"]["arguments"])  # JSON text, always
                m.calls.append((call["id"], call["function"]["name"], args))
            open_calls.add(call["id"])
        if msg["role"] == "tool":
            assert msg["tool_call_id"] in open_calls
            m.results.append((msg["tool_call_id"], _text(msg["content"])))
    m.tools = [t[t["type"]]["name"] for t in body.get("tools", [])]
    return m


def responses_meaning(body: dict[str, Any]) -> Meaning:
    m = Meaning(system=[body["instructions"]] if body.get("instructions") else [])
    open_calls: set[str] = set()
    for item in body["input"]:
        kind = item.get("type", "message")
        if kind == "message" and item["role"] in ("system", "developer"):
            m.system.append(_text(item["content"]))
        elif kind == "function_call":
            m.calls.append((item["call_id"], item["name"], json.loads(item["arguments"])))
            open_calls.add(item["call_id"])
        elif kind == "custom_tool_call":
            m.calls.append((item["call_id"], item["name"], {"input": item["input"]}))
            open_calls.add(item["call_id"])
        elif kind in ("function_call_output", "custom_tool_call_output"):
            assert item["call_id"] in open_calls
            m.results.append((item["call_id"], _text(item["output"])))
    m.tools = [t["name"] for t in body.get("tools", []) if t["type"] in ("function", "custom")]
    return m


def gemini_meaning(body: dict[str, Any], *, gemini3: bool = False) -> Meaning:
    """Checked with google-genai's types (unknown fields are errors there)."""
    for content in body["contents"]:
        gtypes.Content.model_validate(content)
    for tool in body.get("tools", []):
        gtypes.Tool.model_validate(tool)
    gtypes.GenerationConfig.model_validate(body.get("generationConfig", {}))
    gtypes.ToolConfig.model_validate(body.get("toolConfig", {}))
    m = Meaning(system=[p["text"] for p in body.get("systemInstruction", {}).get("parts", [])])
    roles = [c["role"] for c in body["contents"]]
    assert roles[0] == "user" and all(a != b for a, b in itertools.pairwise(roles))
    names: dict[str, str] = {}
    for content in body["contents"]:
        calls = [p for p in content["parts"] if "functionCall" in p]
        if gemini3 and calls:
            assert "thoughtSignature" in calls[0], "Gemini 3 needs the first call of a step signed"
        for p in calls:
            fc = p["functionCall"]
            m.calls.append((fc["id"], fc["name"], fc["args"]))
            names[fc["id"]] = fc["name"]
        for p in content["parts"]:
            if "functionResponse" in p:
                fr = p["functionResponse"]
                assert names[fr["id"]] == fr["name"], "a response names its call's function"
                m.results.append((fr["id"], next(iter(fr["response"].values()))))
    decls = [d for t in body.get("tools", []) for d in t.get("functionDeclarations", [])]
    m.tools = [d["name"] for d in decls]
    return m


def meaning(dialect: Dialect, body: dict[str, Any]) -> Meaning:
    if dialect is Dialect.ANTHROPIC:
        return anthropic_meaning(body)
    if dialect is Dialect.OPENAI_CHAT:
        return chat_meaning(body)
    if dialect is Dialect.OPENAI_RESPONSES:
        return responses_meaning(body)
    return gemini_meaning(body, gemini3=True)


HOSTED = {"web_search"}  # dropped on purpose: only the original provider can run them


@pytest.mark.parametrize(("agent", "dst"), CASES, ids=[f"{a}->{d}" for a, d in CASES])
def test_agent_requests_stay_valid_and_keep_their_meaning(agent: str, dst: Dialect) -> None:
    src = AGENTS[agent]
    before = (
        meaning(src, agent_body(agent))
        if src is not Dialect.GEMINI
        else gemini_meaning(agent_body(agent))
    )
    after = meaning(dst, translated(agent, dst))
    assert after.calls == before.calls, "same calls, same ids, names and arguments"
    assert after.results == before.results, "every result paired with its call"
    assert after.tools == [t for t in before.tools if t not in HOSTED]
    for piece in before.system:  # pieces may be joined (one system message), never lost
        assert piece in "\n\n".join(after.system)


# ------------------------------------------------------------------ Claude Code
def _walk_schema(schema: Any) -> list[dict[str, Any]]:
    """Every sub-schema (not property names) of a JSON schema."""
    if not isinstance(schema, dict):
        return []
    out = [schema]
    for name in ("properties", "$defs", "definitions"):
        for sub in (schema.get(name) or {}).values():
            out += _walk_schema(sub)
    for name in ("items", "additionalProperties"):
        out += _walk_schema(schema.get(name))
    for name in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for sub in schema.get(name) or []:
            out += _walk_schema(sub)
    return out


def test_claude_code_tools_reach_gemini_inside_its_schema_subset() -> None:
    out = translated("claude-code", Dialect.GEMINI)
    decls = {d["name"]: d["parametersJsonSchema"] for d in out["tools"][0]["functionDeclarations"]}
    for schema in decls.values():
        for sub in _walk_schema(schema):
            assert set(sub) <= GEMINI_KEYWORDS, set(sub) - GEMINI_KEYWORDS
    assert decls["Read"]["additionalProperties"] is False  # in Gemini's subset: kept
    assert decls["WebFetch"]["properties"]["url"] == {
        "type": "string",
        "description": "The URL to fetch content from",
    }  # format "uri" is not a Gemini format
    todo = decls["TodoWrite"]["properties"]["todos"]["items"]["properties"]
    assert todo["status"]["enum"] == ["pending", "in_progress", "completed"]
    mcp = decls["mcp__issues__create"]["properties"]
    assert mcp["assignee"]["properties"]["login"] == {"type": "string"}  # $ref inlined
    assert mcp["kind"] == {"enum": ["bug"]}  # const kept as a one-value enum
    assert mcp["priority"] == {"type": "integer", "maximum": 5}


def test_claude_code_shapes_degrade_as_documented() -> None:
    body = agent_body("claude-code")
    to_gemini = translated("claude-code", Dialect.GEMINI)
    text = json.dumps(to_gemini)
    assert "cache_control" not in text and "EqQBCkYIBxgC" not in text
    first_user = [p["text"] for p in to_gemini["contents"][0]["parts"]]
    assert first_user[0].startswith("<system-reminder>")  # stays in the user's turn
    error = to_gemini["contents"][2]["parts"][1]["functionResponse"]["response"]
    assert error == {"error": "F\nFAILED test_calc.py::test_add - assert 3 == 4\nExit code 1"}
    assert to_gemini["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 31999
    # The reminder after the results shares their turn (Gemini wants alternation).
    assert "functionResponse" in to_gemini["contents"][2]["parts"][0]
    assert "text" in to_gemini["contents"][2]["parts"][-1]

    to_chat = translated("claude-code", Dialect.OPENAI_CHAT)
    user_id = body["metadata"]["user_id"]
    assert len(user_id) > 64 and to_chat["user"].startswith("ccx-")
    assert len(to_chat["user"]) == 64
    assert to_chat["reasoning_effort"] == "high"  # budget 31999
    assert to_chat == translated("claude-code", Dialect.OPENAI_CHAT)  # the digest is stable
    to_responses = translated("claude-code", Dialect.OPENAI_RESPONSES)
    assert to_responses["user"] == to_chat["user"]
    assert not [i for i in to_responses["input"] if i["type"] == "reasoning"]


# ------------------------------------------------------------------ Codex CLI
def test_codex_apply_patch_travels_as_one_string_argument() -> None:
    patch = agent_body("codex")["input"][7]["input"]
    claude = translated("codex", Dialect.ANTHROPIC)
    tool = next(t for t in claude["tools"] if t["name"] == "apply_patch")
    assert tool["input_schema"]["properties"] == {"input": {"type": "string"}}
    call = claude["messages"][3]["content"][0]
    assert call["type"] == "tool_use" and call["input"] == {"input": patch}
    gemini_body = translated("codex", Dialect.GEMINI)
    decl = next(
        d for d in gemini_body["tools"][0]["functionDeclarations"] if d["name"] == "apply_patch"
    )
    assert decl["parametersJsonSchema"]["required"] == ["input"]
    chat = translated("codex", Dialect.OPENAI_CHAT)
    assert {
        "type": "custom",
        "custom": {"name": "apply_patch", "description": tool["description"]},
    } in chat["tools"]


def test_codex_session_fields_degrade_as_documented() -> None:
    claude = translated("codex", Dialect.ANTHROPIC)
    assert claude["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert claude["thinking"] == {"type": "enabled", "budget_tokens": 10000}  # effort medium
    assert claude["max_tokens"] == 32000  # Codex sets none: room for thinking and answer
    # developer messages, wherever they are, join the system prompt in order
    assert [b["text"][:12] for b in claude["system"]] == [
        "You are Code",
        "<permissions",
        "Approved com",
    ]
    for dst in (Dialect.ANTHROPIC, Dialect.GEMINI):
        text = json.dumps(translated("codex", dst))
        for dropped in ("gAAAAABo8codex", "prompt_cache_key", "verbosity", '"store"', '"include"'):
            assert dropped not in text, (dst, dropped)
    chat = translated("codex", Dialect.OPENAI_CHAT)
    assert chat["parallel_tool_calls"] is False and chat["reasoning_effort"] == "medium"
    gemini_body = translated("codex", Dialect.GEMINI)
    signed = [
        p["thoughtSignature"]
        for c in gemini_body["contents"]
        for p in c["parts"]
        if "functionCall" in p
    ]
    assert signed == [SKIP_SIGNATURE, SKIP_SIGNATURE]  # OpenAI history, Gemini 3 upstream


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("tools[4]", lambda b: b["tools"].append({"type": "local_shell"})),
        (
            "input[11]",
            lambda b: b["input"].append(
                {
                    "type": "local_shell_call",
                    "call_id": "call_ls",
                    "status": "completed",
                    "action": {"type": "exec", "command": ["ls"]},
                }
            ),
        ),
    ],
)
def test_codex_local_shell_is_a_clear_bad_request(where: str, change: Any) -> None:
    body = agent_body("codex")
    change(body)
    for dst in (Dialect.ANTHROPIC, Dialect.OPENAI_CHAT, Dialect.GEMINI):
        with pytest.raises(BadRequest) as info:
            api.translate_request(
                body, src=Dialect.OPENAI_RESPONSES, dst=dst, model="m", client_model="c"
            )
        assert info.value.message.startswith(f"{where}: local_shell")


# ------------------------------------------------------------------ Gemini CLI
def test_gemini_cli_shapes_degrade_as_documented() -> None:
    claude = translated("gemini-cli", Dialect.ANTHROPIC)
    results = [b for m in claude["messages"] for b in m["content"] if b["type"] == "tool_result"]
    assert [r.get("is_error", False) for r in results] == [False, True]  # {"error": ...}
    assert claude["thinking"]["type"] == "enabled"  # thinkingBudget -1: dynamic
    assert "temperature" not in claude  # thinking on: Anthropic only takes the default
    text = json.dumps(claude)
    assert "CiRnZW1pbmkt" not in text and "Reading the test" not in text  # Gemini's thoughts
    glob = next(t for t in claude["tools"] if t["name"] == "glob")["input_schema"]
    assert glob["type"] == "object"
    assert glob["properties"]["case_sensitive"]["type"] == ["boolean", "null"]
    responses = translated("gemini-cli", Dialect.OPENAI_RESPONSES)
    ids = [i["call_id"] for i in responses["input"] if i["type"] == "function_call"]
    assert ids == ["read_file-1759740000000-7f3a2b", "run_shell_command-1759740001000-9c1d4e"]


def test_gemini_cli_gets_its_ids_and_signatures_back_from_another_upstream() -> None:
    """An Anthropic answer to Gemini CLI: the call id the CLI will echo is the upstream's."""
    answer = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Fix add().", "signature": "EqQBsig"},
            {"type": "tool_use", "id": "toolu_01Edit", "name": "replace", "input": {"x": 1}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }
    out = api.translate_response(
        answer, src=Dialect.ANTHROPIC, dst=Dialect.GEMINI, client_model="gemini-2.5-pro"
    )
    parts = out["candidates"][0]["content"]["parts"]
    gtypes.Content.model_validate(out["candidates"][0]["content"])
    assert parts[1]["functionCall"]["id"] == "toolu_01Edit"
    follow_up = agent_body("gemini-cli")
    follow_up["contents"] += [
        out["candidates"][0]["content"],
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "id": "toolu_01Edit",
                        "name": "replace",
                        "response": {"output": "ok"},
                    }
                }
            ],
        },
    ]
    claude = api.translate_request(
        follow_up, src=Dialect.GEMINI, dst=Dialect.ANTHROPIC, model="c", client_model="g"
    )
    last_turn = claude["messages"][-2]["content"]
    assert last_turn[0] == {"type": "thinking", "thinking": "Fix add().", "signature": "EqQBsig"}
    assert claude["messages"][-1]["content"][0]["tool_use_id"] == "toolu_01Edit"
