"""A scripted Gemini upstream for driving a real coding agent through the proxy (by hand).

It answers the first request that offers a `Read` tool with a functionCall reading
`--file`, the request that brings the functionResponse back with a text quoting what it
got, and anything else with a short text. Every request body is appended to `--dump`
(JSON lines) so the translation can be inspected. Loopback only.
"""

from __future__ import annotations

import argparse
import json
from functools import partial

import trio

from core.http import Request, Response
from core.server import serve


def sse(*chunks: dict[str, object]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)


def text_answer(text: str) -> bytes:
    usage = {"promptTokenCount": 50, "candidatesTokenCount": 9, "totalTokenCount": 59}
    return sse(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": text}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": usage,
        }
    )


def call_answer(path: str) -> bytes:
    call = {"functionCall": {"name": "Read", "args": {"file_path": path}}}
    usage = {"promptTokenCount": 50, "candidatesTokenCount": 9, "totalTokenCount": 59}
    return sse(
        {
            "candidates": [
                {"content": {"role": "model", "parts": [call]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": usage,
        }
    )


async def handler(args: argparse.Namespace, request: Request) -> Response:
    body = json.loads(request.body or b"{}")
    with open(args.dump, "a") as f:
        f.write(json.dumps({"path": request.path, "body": body}) + "\n")
    parts = [p for c in body.get("contents", []) for p in c.get("parts", [])]
    responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
    tools = [
        d.get("name") for t in body.get("tools", []) for d in t.get("functionDeclarations", [])
    ]
    if responses:
        out = json.dumps(responses[-1].get("response"))[:200]
        data = text_answer(f"The tool gave me: {out}")
    elif "Read" in tools:
        data = call_answer(args.file)
    else:
        data = text_answer("hello from the scripted upstream")
    return Response(status=200, headers=[(b"content-type", b"text/event-stream")], body=data)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--dump", required=True)
    args = p.parse_args()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve, partial(handler, args), port=args.port))
        print("READY", flush=True)


if __name__ == "__main__":
    trio.run(main)
