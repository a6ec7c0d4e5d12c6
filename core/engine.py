"""The engine: owns the runtime, the upstream client, the access log and the server.

Rules:
- Structured concurrency: `Engine.run` starts the server and the log flusher in one
  nursery with `nursery.start`; cancelling it stops everything.
- Config changes are build-then-swap: `apply_config` builds a new Runtime (carrying state
  over by upstream name) and swaps one reference; requests in flight keep theirs.
- The tray (later) and the status API read `snapshot()`, never the mutable runtime.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import trio

from core.accesslog import AccessLog
from core.admin import handle_admin
from core.config import Config
from core.config_parse import load_config
from core.dialects.registry import match_route
from core.errors import ConfigError
from core.http import Request, Response
from core.metrics import Metrics
from core.proxy import Proxy
from core.server import ServerInfo, serve
from core.snapshot import Snapshot, take_snapshot
from core.state import Runtime
from core.upstream import UpstreamClient
from core.watchdog import Watchdog

log = logging.getLogger("ccx.engine")
NOT_FOUND = b'{"error":{"type":"not_found","message":"no such endpoint"}}'


class Engine:
    def __init__(self, config: Config, *, access_log: AccessLog | None = None) -> None:
        self.runtime = Runtime.build(config, None, trio.current_time())
        self.config_error: str | None = None
        self.metrics = Metrics()
        self.access_log = access_log or AccessLog()
        self.client = UpstreamClient()
        self.watchdog = Watchdog()
        self.proxy = Proxy(self)
        self.info: ServerInfo | None = None
        # Called after each config change or rejected edit (the tray and tests listen here).
        self.on_config_change: list[Callable[[], None]] = []

    def snapshot(self) -> Snapshot:
        return take_snapshot(
            self.runtime, now=trio.current_time(), wall=time.time(), config_error=self.config_error
        )

    def apply_config(self, config: Config) -> None:
        """Swap in a new, fully validated config; state carries over by upstream name."""
        self.runtime = Runtime.build(config, self.runtime, trio.current_time())
        self.config_error = None
        self.runtime.add_event(time.time(), "config_reloaded", None, f"loaded {config.source}")
        log.info("config reloaded from %s", config.source)
        self._changed()

    def reject_config(self, error: ConfigError) -> None:
        """A bad edit: keep the old config running and say what is wrong."""
        self.config_error = str(error)
        self.runtime.add_event(time.time(), "config_error", None, str(error))
        log.warning("config not reloaded, the previous one keeps running: %s", error)
        self._changed()

    def _changed(self) -> None:
        for callback in self.on_config_change:
            callback()

    def note(self, message: str) -> None:
        self.runtime.add_event(time.time(), "config_error", None, message)
        log.warning("%s", message)

    def handle(self, request: Request) -> Awaitable[Response]:
        """The server's handler. Not a coroutine itself: an API request gets the proxy's
        coroutine as is, one await level less on every wakeup of its upstream wait."""
        route = match_route(request.method, request.path)
        if route is not None:
            return self.proxy.handle_api(route, request)
        return self._handle_other(request)

    async def _handle_other(self, request: Request) -> Response:
        response = await handle_admin(self, request)
        if response is None:
            return Response(
                status=404, headers=[(b"content-type", b"application/json")], body=NOT_FOUND
            )
        return response

    async def run(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listen = self.runtime.config.listen
        # The run's clock, read straight (trio.current_time is three calls deep), by every
        # part that reads it per request or per chunk.
        now = trio.lowlevel.current_clock().current_time
        self.proxy.now = self.client.now = self.watchdog.now = now
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.access_log.run)
                await nursery.start(self.watchdog.run)
                self.info = await nursery.start(
                    partial(
                        serve,
                        self.handle,
                        host=host or listen.host,
                        port=listen.port if port is None else port,
                    )
                )
                task_status.started(self.info)
        finally:
            with trio.CancelScope(shield=True):
                await self.client.aclose()
            self.access_log.close()


def access_log_for(config: Config) -> AccessLog:
    from ccx_tray.paths import log_dir

    cfg = config.logging
    path = cfg.file
    if path is None:
        path = os.path.join(log_dir(), "requests.jsonl")
    return AccessLog(
        stdout=sys.stdout if cfg.stdout else None,
        file_path=path or None,
        max_bytes=cfg.max_bytes,
        backups=cfg.backups,
    )


async def _run_until_signal(config: Config, config_path: str) -> None:
    from core.reload import watch_config

    engine = Engine(config, access_log=access_log_for(config))
    async with trio.open_nursery() as nursery:
        info = await nursery.start(engine.run)
        await nursery.start(watch_config, engine, Path(config_path))
        print(f"ccx-tray listening on {info.url}", file=sys.stderr, flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                print("ccx-tray: stopping", file=sys.stderr, flush=True)
                nursery.cancel_scope.cancel()
                break


def raise_open_file_limit(wanted: int = 65536) -> None:
    """Each proxied stream holds two sockets; desktops often start with a soft limit of 256
    (macOS) or 1024 (Linux). Raise the soft limit toward the hard one."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            log.warning("could not raise the open file limit from %d", soft)


# The cyclic GC collects its young generation when tracked allocations outnumber frees by
# this many. At CPython's 700, 64 concurrent requests kept crossing it: each pass (~0.35 ms
# here) promoted the requests in flight, whose frees then no longer counted down, so a pass
# came every ~35 requests, on some request's latency. A served request leaves no cycle
# (tests/test_proxy_cycles.py), so the young generation holds little more than what is in
# flight: at 10,000, one pass in 20,000 requests at 64 clients, none at one client.
YOUNG_GC_THRESHOLD = 10_000


def tune_gc() -> None:
    """Before serving: startup objects (modules, config) never die, so they leave the
    cyclic collector's sight (its full passes walked them all, as latency spikes); young
    passes get the threshold above."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, middle, old)


def run_headless(config_path: str) -> int:
    """Run the proxy without a tray until SIGINT/SIGTERM. Returns the exit code."""
    raise_open_file_limit()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"ccx-tray: {exc}", file=sys.stderr)
        return 1
    tune_gc()
    try:
        trio.run(_run_until_signal, config, config_path)
    except OSError as exc:
        print(f"ccx-tray: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
