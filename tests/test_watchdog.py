"""The stream watchdog stalls relays past their idle or total deadline, on virtual time."""

from __future__ import annotations

from typing import Literal

import trio
from trio.testing import MockClock

from core.watchdog import Watchdog


class FakeRelay:
    def __init__(self, *, idle: float, total: float) -> None:
        self.idle = idle
        self.total_deadline = trio.current_time() + total
        self.last_activity = trio.current_time()
        self.stalled: list[tuple[str, float]] = []

    def stall(self, phase: Literal["idle", "total"]) -> None:
        self.stalled.append((phase, trio.current_time()))


async def test_idle_and_total_deadlines(autojump_clock: MockClock) -> None:
    dog = Watchdog()
    async with trio.open_nursery() as nursery:
        await nursery.start(dog.run)
        quiet = FakeRelay(idle=2.0, total=100.0)
        busy = FakeRelay(idle=2.0, total=5.0)
        dog.watch(quiet)
        dog.watch(busy)
        for _ in range(8):  # busy sends a chunk every second: never idle, but total is 5 s
            await trio.sleep(1.0)
            busy.last_activity = trio.current_time()
        assert [p for p, _ in quiet.stalled] == ["idle"]
        assert 2.0 <= quiet.stalled[0][1] <= 2.5  # noticed within a quarter of idle
        assert [p for p, _ in busy.stalled] == ["total"]
        assert 5.0 <= busy.stalled[0][1] <= 5.5
        assert len(dog) == 0  # stalled relays are forgotten, not stalled twice
        nursery.cancel_scope.cancel()


async def test_forgotten_relays_are_left_alone(autojump_clock: MockClock) -> None:
    dog = Watchdog()
    async with trio.open_nursery() as nursery:
        await nursery.start(dog.run)
        relay = FakeRelay(idle=1.0, total=10.0)
        dog.watch(relay)
        await trio.sleep(0.5)
        dog.forget(relay)
        await trio.sleep(5)
        assert relay.stalled == []
        nursery.cancel_scope.cancel()
