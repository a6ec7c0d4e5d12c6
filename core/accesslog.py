"""One JSON line per request, to stdout and a rotating file, off the hot path.

Rules: `record()` only appends a dict to a buffer (O(1), no I/O, no JSON); a flush task
serialises and writes batches every `interval` seconds and once more on shutdown, so a
request never waits for a disk or a slow terminal. Entries must already be free of secrets.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
from collections import deque
from typing import Any, TextIO

import trio

from core import fastjson

SLICE = 32  # lines serialised between two checkpoints


class AccessLog:
    def __init__(
        self,
        *,
        stdout: TextIO | None = None,
        file_path: str | None = None,
        max_bytes: int = 10 * 1024 * 1024,
        backups: int = 5,
        keep_recent: int = 0,
    ) -> None:
        self._buffer: list[dict[str, Any]] = []
        self._stdout = stdout
        self._file: logging.handlers.RotatingFileHandler | None = None
        if file_path:
            os.makedirs(os.path.dirname(os.path.abspath(file_path)), exist_ok=True)
            self._file = logging.handlers.RotatingFileHandler(
                file_path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
            self._file.setFormatter(logging.Formatter("%(message)s"))
        # The last entries, kept for tests and the status page (0 = none).
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep_recent or None)
        self._keep = keep_recent > 0
        self._wake = trio.Event()

    def record(self, entry: dict[str, Any]) -> None:
        self._buffer.append(entry)
        if self._keep:
            self.recent.append(entry)
        if len(self._buffer) >= 512:
            self._wake.set()

    def flush(self) -> None:
        """Write everything buffered now (tests, shutdown)."""
        batch, self._buffer = self._buffer, []
        self._write(batch)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        if not batch:
            return
        text = "\n".join(_line(e) for e in batch)
        if self._stdout is not None:
            try:
                self._stdout.write(text + "\n")
                self._stdout.flush()
            except (OSError, ValueError):  # a closed or broken stdout must not stop the proxy
                pass
        if self._file is not None:
            record = logging.LogRecord("ccx.access", logging.INFO, "", 0, text, None, None)
            self._file.emit(record)

    async def _flush_in_slices(self) -> None:
        # Serialising 200 ms of lines at once stalls every request for milliseconds (it
        # showed as p99 latency); small slices with a checkpoint between keep stalls short.
        while self._buffer:
            batch = self._buffer[:SLICE]
            del self._buffer[:SLICE]
            self._write(batch)
            await trio.lowlevel.checkpoint()

    async def run(
        self,
        *,
        interval: float = 0.2,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        try:
            while True:
                with trio.move_on_after(interval):
                    await self._wake.wait()
                self._wake = trio.Event()
                await self._flush_in_slices()
        finally:
            self.flush()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()


def _line(entry: dict[str, Any]) -> str:
    """One JSON line, ASCII only (non-ASCII escaped) so any console encoding takes it."""
    line = fastjson.dumps_str(entry, default=str)
    if line.isascii():
        return line
    return json.dumps(entry, separators=(",", ":"), default=str)
