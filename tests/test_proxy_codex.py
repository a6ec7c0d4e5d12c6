"""Codex CLI through the proxy to an Anthropic upstream: `apply_patch` stays free-form.

Codex defines `apply_patch` as a Responses custom tool and applies only a
`custom_tool_call` whose `input` is the patch text. The Anthropic upstream sees a tool
with one string parameter `input` and calls it with `{"input": patch}`; the proxy must
hand Codex the custom call again, as a body and as a stream.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio

from core.sse import SSEParser
from tests.conftest import running_proxy
from tests.fakes import FakeUpstream, json_reply, make_config, sse_reply, start_fake

AGENTS = Path(__file__).parent / "data" / "translate" / "agents"
PATCH = '*** Begin Patch\n*** Update File: src/app.py\n@@\n-x = 1\n+x = "ü"\n*** End Patch\n'


def codex_body(stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((AGENTS / "codex.json").read_text())
    return {**body, "model": "gpt-5-codex", "stream": stream}


def config(url: str) -> Any:
    return make_config(f"""
upstreams:
  - name: claude
    provider: anthropic
    base_url: {url}
    api_key: upstream-key-0000000001
    model: claude-sonnet-4-5
""")


def anthropic_events() -> list[dict[str, Any]]:
    args = json.dumps({"input": PATCH})
    fragments = [args[i : i + 9] for i in range(0, len(args), 9)]
    start: dict[str, Any] = {
        "id": "msg_01P",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 50, "output_tokens": 1},
    }
    block = {"type": "tool_use", "id": "toolu_P1", "name": "apply_patch", "input": {}}
    return [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": block},
        *(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": f},
            }
            for f in fragments
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 40},
        },
        {"type": "message_stop"},
    ]


def assert_upstream_saw_a_function_with_one_string_input(fake: FakeUpstream) -> None:
    sent = json.loads(fake.requests[0].body)
    (tool,) = [t for t in sent["tools"] if t["name"] == "apply_patch"]
    assert tool["input_schema"]["properties"]["input"]["type"] == "string"


async def test_codex_gets_apply_patch_as_a_custom_tool_call(nursery: trio.Nursery) -> None:
    answer = {
        "id": "msg_01P",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [
            {"type": "tool_use", "id": "toolu_P1", "name": "apply_patch", "input": {"input": PATCH}}
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 50, "output_tokens": 40},
    }
    fake = await start_fake(nursery, FakeUpstream(json_reply(answer)))
    async with running_proxy(config(fake.url)) as (_engine, http):
        resp = await http.post("/v1/responses", json=codex_body(stream=False))
    assert resp.status_code == 200, resp.text
    (item,) = resp.json()["output"]
    assert item["type"] == "custom_tool_call"
    assert (item["call_id"], item["name"], item["input"]) == ("toolu_P1", "apply_patch", PATCH)
    assert_upstream_saw_a_function_with_one_string_input(fake)


async def test_codex_streams_apply_patch_as_custom_tool_call_events(
    nursery: trio.Nursery,
) -> None:
    raw = b"".join(
        f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in anthropic_events()
    )
    third = len(raw) // 3  # split mid-event: the proxy translates incrementally
    chunks: list[bytes | trio.Event] = [raw[:third], raw[third : 2 * third], raw[2 * third :]]
    fake = await start_fake(nursery, FakeUpstream(sse_reply(chunks)))
    async with running_proxy(config(fake.url)) as (_engine, http):
        resp = await http.post("/v1/responses", json=codex_body(stream=True))
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream"
    parser = SSEParser()
    events = [json.loads(e.data) for e in parser.feed(resp.content) + parser.close()]
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["type"] == "custom_tool_call" and added["item"]["name"] == "apply_patch"
    deltas = [e["delta"] for e in events if e["type"] == "response.custom_tool_call_input.delta"]
    assert "".join(deltas) == PATCH
    done = next(e for e in events if e["type"] == "response.custom_tool_call_input.done")
    assert done["input"] == PATCH
    assert events[-1]["type"] == "response.completed"
    (item,) = events[-1]["response"]["output"]
    assert item["type"] == "custom_tool_call" and item["input"] == PATCH
    assert_upstream_saw_a_function_with_one_string_input(fake)
