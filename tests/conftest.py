"""Shared fixtures: a running proxy engine with an in-memory access log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import httpx
import trio

from core.accesslog import AccessLog
from core.config import Config
from core.engine import Engine


@asynccontextmanager
async def running_proxy(config: Config) -> AsyncIterator[tuple[Engine, httpx.AsyncClient]]:
    engine = Engine(config, access_log=AccessLog(keep_recent=1000))
    async with trio.open_nursery() as nursery:
        info = await nursery.start(partial(engine.run, host="127.0.0.1", port=0))
        async with httpx.AsyncClient(base_url=info.url, timeout=600) as client:
            yield engine, client
        nursery.cancel_scope.cancel()


ProxyFactory = Callable[[Config], "AsyncIterator[tuple[Engine, httpx.AsyncClient]]"]
