"""Idle and total deadlines for committed streams, without a cancel scope per chunk, and
for attempts waiting on their first byte, without a cancel scope per request.

A trio cancel scope with a deadline costs about 12 us here, and a stream relays one chunk
per event: a scope per chunk alone would eat most of the 20 us per-event budget. Instead
each relay notes the time of its last chunk (one float), and one watchdog task looks at
all live relays a few times per idle period. A relay past its deadline is told to `stall`:
it aborts its upstream connection, which wakes the pending read with an error that the
relay reports as the timeout it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import trio

MAX_TICK = 0.5  # seconds; a stall is noticed at most this late (or idle/4 if smaller)


class Watched(Protocol):
    idle: float
    total_deadline: float
    last_activity: float

    def stall(self, phase: Literal["idle", "total"]) -> None: ...


class Watchdog:
    def __init__(self) -> None:
        self._relays: set[Watched] = set()
        self._wake = trio.Event()
        self._asleep = False  # waiting for a first relay: `watch` must wake it
        # The clock relays note their activity with, once per chunk: Engine.run binds its
        # run's clock here (one call instead of trio.current_time's three).
        self.now: Callable[[], float] = trio.current_time

    def watch(self, relay: Watched) -> None:
        self._relays.add(relay)
        if self._asleep:
            self._wake.set()

    def forget(self, relay: Watched) -> None:
        self._relays.discard(relay)

    def __len__(self) -> int:
        return len(self._relays)

    def check(self, now: float) -> None:
        for relay in list(self._relays):
            if now >= relay.total_deadline:
                self.forget(relay)
                relay.stall("total")
            elif now - relay.last_activity >= relay.idle:
                self.forget(relay)
                relay.stall("idle")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        empty_ticks = 0
        while True:
            if not self._relays:
                # Sleep only after a whole tick with nothing to watch: requests come and go
                # one by one, and waking this task for each would cost more than a tick.
                empty_ticks += 1
                if empty_ticks > 1:
                    self._asleep = True
                    await self._wake.wait()
                    self._asleep = False
                    self._wake = trio.Event()
                    empty_ticks = 0
                    continue
            else:
                empty_ticks = 0
            tick = min(MAX_TICK, min((r.idle for r in self._relays), default=MAX_TICK) / 4)
            await trio.sleep(tick)
            self.check(self.now())
