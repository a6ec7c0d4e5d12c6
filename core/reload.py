"""Hot reload: watch config.yaml and swap in each good save; keep the old config on a bad one.

Rules (STACK-NOTES, "Hot reload"):
- Watch the file's folder and filter by name: watching the path itself went dead after the
  first rename-save (vim, many editors).
- Do not interpret change types (a rename-save reports added+deleted in one batch):
  re-read the file and check it exists.
- Stop `awatch` with a stop_event, set before the cancel, or cancelling takes seconds.
- Build-then-swap: the new config is parsed and validated fully before `apply_config`;
  a ConfigError goes to `reject_config`, which keeps the running config and shows why.
- `listen` changes need a restart (the socket is bound); that is said, not silently ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from watchfiles import awatch

from core.config_parse import load_config
from core.errors import ConfigError

if TYPE_CHECKING:
    from core.engine import Engine


def reload_once(engine: Engine, path: Path) -> bool:
    """Re-read `path` and apply it. True if the new config is now running."""
    if not path.exists():
        return False  # mid rename-save; the next event brings the file back
    try:
        config = load_config(path, os.environ)
    except ConfigError as exc:
        engine.reject_config(exc)
        return False
    old_listen = engine.runtime.config.listen
    engine.apply_config(config)
    if config.listen != old_listen:
        engine.note(
            f"listen changed to {config.listen.host}:{config.listen.port}: "
            "restart ccx-tray to use it"
        )
    return True


async def watch_config(
    engine: Engine,
    path: Path,
    *,
    step_ms: int = 50,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    path = path.resolve()
    stop = trio.Event()
    try:
        watcher = awatch(path.parent, stop_event=stop, step=step_ms, debounce=200)
        task_status.started()
        async for changes in watcher:
            if any(Path(changed).name == path.name for _, changed in changes):
                reload_once(engine, path)
    finally:
        stop.set()
