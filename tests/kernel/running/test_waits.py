"""The waits for jobs' ends (qmk.kernel.running.waits): settled by the job's end, the
limit or the kernel's close, whichever comes first, under one timer of the clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.running.waits import COMPACT_AT, Waits


def run(body: Callable[[ManualClock, Waits], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        clock = ManualClock()
        return await body(clock, Waits(clock))

    return asyncio.run(main())


async def settle() -> None:
    for _ in range(3):  # the timer's callback, then the woken tasks
        await asyncio.sleep(0)


def test_a_wait_ends_with_its_job_and_not_before() -> None:
    async def body(clock: ManualClock, waits: Waits) -> None:
        first = asyncio.create_task(waits.until("a", clock.now() + 60))
        second = asyncio.create_task(waits.until("a", clock.now() + 60))
        other = asyncio.create_task(waits.until("b", clock.now() + 60))
        await settle()
        assert waits.waiting == 3 and not first.done()
        waits.ended("a")
        await settle()
        assert first.done() and second.done() and not other.done()
        assert waits.waiting == 1
        waits.ended("b")
        await settle()
        assert other.done() and waits.waiting == 0

    run(body)


def test_a_wait_ends_at_its_limit_and_not_before() -> None:
    async def body(clock: ManualClock, waits: Waits) -> None:
        soon = asyncio.create_task(waits.until("a", clock.now() + 1.0))
        later = asyncio.create_task(waits.until("b", clock.now() + 2.0))
        await settle()
        clock.advance(0.5)
        await settle()
        assert not soon.done()
        clock.advance(0.5)  # soon's limit
        await settle()
        assert soon.done() and not later.done()
        clock.advance(1.0)
        await settle()
        assert later.done() and waits.waiting == 0

    run(body)


def test_many_waits_share_one_timer_of_the_clock() -> None:
    async def body(clock: ManualClock, waits: Waits) -> None:
        tasks = [
            asyncio.create_task(waits.until(f"j{i}", clock.now() + 100 - i)) for i in range(50)
        ]
        await settle()
        assert len(clock._timers) == 1  # the earliest limit's, moved as earlier ones came
        for i in range(0, 50, 2):
            waits.ended(f"j{i}")
        clock.advance(100)
        await settle()
        assert all(task.done() for task in tasks) and not clock._timers

    run(body)


def test_a_cancelled_wait_leaves_nothing_for_its_job() -> None:
    async def body(clock: ManualClock, waits: Waits) -> None:
        task = asyncio.create_task(waits.until("a", clock.now() + 60))
        await settle()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert waits.waiting == 0 and not waits._by_job
        waits.ended("a")  # nothing left to settle

    run(body)


def test_settled_waits_do_not_pile_up_in_the_heap() -> None:
    async def body(clock: ManualClock, waits: Waits) -> None:
        for i in range(10 * COMPACT_AT):  # each answered by its job's end, long before
            task = asyncio.create_task(waits.until(f"j{i}", clock.now() + 3600))
            await asyncio.sleep(0)
            waits.ended(f"j{i}")
            await task
        assert len(waits._limits) <= COMPACT_AT + 1

    run(body)


def test_the_close_settles_every_wait_and_drops_the_timer() -> None:
    async def body(clock: ManualClock, waits: Waits) -> None:
        tasks = [asyncio.create_task(waits.until(f"j{i}", clock.now() + 60)) for i in range(3)]
        await settle()
        waits.close()
        await settle()
        assert all(task.done() for task in tasks) and not clock._timers

    run(body)
