"""The kernel's clocks' timers (``call_at``): a run's timeout is one of them."""

from __future__ import annotations

import asyncio

from qmk.kernel.clock import RateClock, Rest, SystemClock
from qmk.kernel.manual_clock import ManualClock


def test_a_manual_timer_fires_in_a_later_turn_once_advance_reaches_its_time() -> None:
    async def body() -> list[tuple[str, float]]:
        clock = ManualClock(start=100.0)
        fired: list[tuple[str, float]] = []
        clock.call_at(105.0, lambda: fired.append(("due", clock.now())))
        clock.advance(4.0)
        await asyncio.sleep(0)
        assert fired == []  # 104: not yet
        clock.advance(1.0)
        assert fired == []  # 105: due, called by the loop, not by advance
        await asyncio.sleep(0)
        return fired

    assert asyncio.run(body()) == [("due", 105.0)]


def test_a_cancelled_manual_timer_never_fires_and_a_past_one_fires_at_once() -> None:
    async def body() -> list[str]:
        clock = ManualClock(start=100.0)
        fired: list[str] = []
        clock.call_at(101.0, lambda: fired.append("cancelled")).cancel()
        due = clock.call_at(102.0, lambda: fired.append("cancelled when due"))
        clock.call_at(99.0, lambda: fired.append("past"))
        clock.advance(5.0)
        due.cancel()  # due, not yet called: it is not called
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return fired

    assert asyncio.run(body()) == ["past"]


def test_a_system_timer_fires_at_its_time_and_a_cancelled_one_before_it_does_not() -> None:
    async def body() -> list[str]:
        clock = SystemClock()
        fired: list[str] = []
        done = asyncio.Event()
        now = clock.now()
        clock.call_at(now, lambda: fired.append("cancelled")).cancel()
        clock.call_at(now + 0.001, lambda: (fired.append("due"), done.set()))
        async with asyncio.timeout(60):  # a bound, not a race: it fires in a millisecond
            await done.wait()
        return fired

    assert asyncio.run(body()) == ["due"]


def test_a_machine_clock_wait_returns_once_the_clock_reaches_its_cycle() -> None:
    # the clock's own timer ends the wait (setting the wake event), no exception through
    # the waiting task; a wait woken first leaves no timer behind to set the event later
    async def body() -> tuple[int, int, bool, bool]:
        clock = RateClock(1e6)  # a cycle a microsecond
        clock.start()
        wake = asyncio.Event()
        target = clock.cycle() + 2_000
        await clock.wait(target, wake)
        reached, ended_by_clock = clock.cycle(), wake.is_set()
        wake.clear()
        asyncio.get_running_loop().call_soon(wake.set)
        await clock.wait(clock.cycle() + 3_000, wake)  # woken, or ended: either way
        wake.clear()
        await asyncio.sleep(0.01)  # past its timer's time: a timer left would set it
        return reached, target, ended_by_clock, wake.is_set()

    reached, target, ended_by_clock, set_later = asyncio.run(body())
    assert reached >= target and ended_by_clock and not set_later


def test_an_idle_system_clock_rests_until_woken_and_its_tick_counts_the_passed_epochs() -> None:
    async def body() -> tuple[bool, int, list[int]]:
        clock = SystemClock()
        idle = [True]
        rest = Rest(lambda: idle[0], limit_s=3600.0)
        ticks = clock.epochs(0.001, rest)
        first = asyncio.ensure_future(ticks.__anext__())
        await asyncio.sleep(0)  # the ticker looked: idle, it rests from here
        await asyncio.sleep(0.05)  # fifty epochs of wall time, and no tick
        rested = not first.done()
        idle[0] = False
        rest.wake()  # a job arrived
        counted = await first
        busy = [await ticks.__anext__() for _ in range(3)]
        await ticks.aclose()
        return rested, counted, busy

    rested, counted, busy = asyncio.run(body())
    assert rested
    assert counted >= 50  # the epochs of the rest, counted at its end
    assert busy == [1, 1, 1]  # busy again: one epoch a tick


def test_a_manual_clock_ticks_one_epoch_at_a_time_idle_or_not() -> None:
    async def body() -> list[int]:
        clock = ManualClock()
        ticks = clock.epochs(0.01, Rest(lambda: True))
        got: list[int] = []

        async def consume() -> None:
            async for passed in ticks:
                got.append(passed)

        task = asyncio.ensure_future(consume())
        await clock.tick(3)
        task.cancel()
        return got

    assert asyncio.run(body()) == [1, 1, 1]
