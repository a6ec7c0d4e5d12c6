"""The access log: every line written once, off the request path, rotated by size."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import trio
from trio.testing import MockClock

from core.accesslog import AccessLog
from core.request_ctx import new_request_id


async def test_lines_reach_stdout_and_file_and_rotate(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    out = io.StringIO()
    path = tmp_path / "logs" / "requests.jsonl"
    log = AccessLog(stdout=out, file_path=str(path), max_bytes=2000, backups=3)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        for i in range(400):
            log.record({"request_id": f"req_{i}", "status": 200})
        assert out.getvalue() == ""  # nothing written on the request path
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["request_id"] for x in lines] == [f"req_{i}" for i in range(400)]
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["requests.jsonl", "requests.jsonl.1", "requests.jsonl.2", "requests.jsonl.3"]
    assert all(p.stat().st_size <= 2000 + 1500 for p in path.parent.iterdir())
    newest = [json.loads(x) for x in path.read_text().splitlines()]
    assert newest[-1]["request_id"] == "req_399"  # the live file holds the latest lines
    log.close()


async def test_shutdown_flushes_what_is_buffered(autojump_clock: MockClock) -> None:
    out = io.StringIO()
    log = AccessLog(stdout=out)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        log.record({"request_id": "last"})
        nursery.cancel_scope.cancel()
    assert json.loads(out.getvalue())["request_id"] == "last"


def test_request_ids_are_unique_and_keep_their_shape() -> None:
    ids = [new_request_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(re.fullmatch(r"req_[0-9a-f]{16}", i) for i in ids)


def test_lines_are_ascii_json_whatever_they_carry() -> None:
    """Any console encoding takes a line: non-ASCII is escaped; odd values become text."""
    out = io.StringIO()
    log = AccessLog(stdout=out)
    log.record({"request_id": "a", "error": "modèle ∑ inconnu", "at": Path("/x")})
    log.record({"request_id": "b", "status": 200})
    log.flush()
    lines = out.getvalue().splitlines()
    assert all(line.isascii() for line in lines)
    first, second = (json.loads(line) for line in lines)
    assert first == {"request_id": "a", "error": "modèle ∑ inconnu", "at": "/x"}
    assert second == {"request_id": "b", "status": 200}
