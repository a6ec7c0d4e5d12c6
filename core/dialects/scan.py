"""The same-dialect stream scanner (`TailScanner`) and the JSON search it reads usage with.

Rules:
- Scanners are fed every relayed chunk, so `feed` only appends bytes and runs a few
  C-level substring searches; JSON is parsed once, in `result()`, from bounded buffers
  (the head and a tail, see HEAD_CAP and TAIL_CAP).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from core.dialects.base import Usage

HEAD_CAP = 16 * 1024  # the first event(s): Anthropic's message_start carries input usage
TAIL_CAP = 64 * 1024  # the last events: final usage; trimmed only when twice this size


class TailScanner:
    """A cheap StreamScanner: keeps the head and a bounded tail, watches for end markers.

    `feed` appends the chunk and, until an end marker is seen, searches the chunk (and
    the seam with the previous chunk) for one short `trigger` that every marker contains;
    only on a hit are the markers checked. Markers are chosen so that they cannot occur
    inside JSON string values (a raw newline before `event:`/`data:`, or an unescaped
    `"key":"value"` pair). `result` hands head and tail to `parse_usage`.
    """

    __slots__ = (
        "_carry",
        "_chunks",
        "_ended",
        "_head",
        "_markers",
        "_parse",
        "_seam",
        "_size",
        "_trigger",
    )

    def __init__(
        self,
        *,
        trigger: bytes,
        end_markers: tuple[bytes, ...],
        parse_usage: Callable[[bytes, bytes], Usage],
        keep_head: bool = False,
    ) -> None:
        assert all(trigger in m for m in end_markers), "every marker must contain the trigger"
        self._trigger = trigger
        self._markers = end_markers
        self._parse = parse_usage
        self._seam = max(len(m) for m in end_markers) - 1
        self._carry = b"\n"  # the stream's first line starts a line too
        self._ended = False
        self._head = bytearray() if keep_head else None
        self._chunks: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        head = self._head
        if head is not None and len(head) < HEAD_CAP:
            head += chunk[: HEAD_CAP - len(head)]
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > 2 * TAIL_CAP:
            joined = b"".join(self._chunks)[-TAIL_CAP:]
            self._chunks = [joined]
            self._size = len(joined)
        if not self._ended:
            seam = self._carry + chunk[: self._seam]
            if self._trigger in chunk or self._trigger in seam:
                self._ended = any(m in chunk or m in seam for m in self._markers)
            self._carry = (self._carry + chunk[-self._seam :])[-self._seam :]

    def result(self) -> tuple[Usage, bool]:
        tail = b"".join(self._chunks)[-TAIL_CAP:]
        head = bytes(self._head) if self._head is not None else b""
        try:
            usage = self._parse(head, tail)
        except Exception:  # a scanner never breaks the relay; usage is best effort
            usage = Usage()
        return usage, self._ended


def find_json_object(buf: bytes, key: bytes, *, last: bool = True) -> dict[str, Any] | None:
    """The object value of `"key":` in raw JSON/SSE bytes (last or first occurrence).

    Occurrences whose value is not an object (`null`) or is cut off are skipped.
    """
    needle = b'"' + key + b'"'
    end = len(buf)
    start = 0
    decoder = json.JSONDecoder()
    for _ in range(16):
        pos = buf.rfind(needle, 0, end) if last else buf.find(needle, start)
        if pos < 0:
            return None
        value = _object_after(buf, pos + len(needle), decoder)
        if value is not None:
            return value
        end, start = pos, pos + 1
    return None


def _object_after(buf: bytes, i: int, decoder: json.JSONDecoder) -> dict[str, Any] | None:
    text = buf[i : i + 8192].decode("utf-8", "replace").lstrip()
    if not text.startswith(":"):
        return None
    text = text[1:].lstrip()
    if not text.startswith("{"):
        return None
    try:
        value, _ = decoder.raw_decode(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
