"""Clocks their caller drives, for tests: :class:`ManualClock` (wall time, timeout scopes
and the epoch tick) and :class:`ManualMachineClock` (machine time).

They satisfy :class:`~qmk.kernel.clock.Clock` and :class:`~qmk.kernel.clock.MachineClock`
as :class:`~qmk.kernel.clock.SystemClock` and :class:`~qmk.kernel.clock.RateClock` do.
Like Trio's ``MockClock``, a :class:`ManualClock`'s time moves only by
:meth:`~ManualClock.advance` and an epoch passes only by :meth:`~ManualClock.tick`, so a
test of timeouts, deadlines, session expiry or preemption is exact and takes no wall
time. A kernel is given one through ``Kernel.open(clock=..., machine_clock=...)``; the
kernel process of ``qmk serve`` runs on the real clocks and never imports this module.

>>> import asyncio
>>> from qmk.aio import TaskGroup
>>> async def demo():
...     clock = ManualClock(start=100.0)
...     expired = []
...     async def wait():
...         try:
...             async with clock.timeout_at(105.0):
...                 await asyncio.Event().wait()
...         except TimeoutError:
...             expired.append(clock.now())
...     async with TaskGroup() as group:
...         group.create_task(wait())
...         await asyncio.sleep(0)
...         clock.advance(4.0)  # 104: not yet
...         await asyncio.sleep(0)
...         before = list(expired)
...         clock.advance(1.0)  # 105: the scope expires
...     return before, expired
>>> asyncio.run(demo())
([], [105.0])
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from qmk import aio
from qmk.kernel.clock import Cancellable, Rest


class ManualClock:
    """A clock its caller drives: time moves by :meth:`advance`, epochs pass by :meth:`tick`.

    Args:
        start: the initial value of :meth:`now`.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._scopes: dict[aio.Timeout, float] = {}
        self._timers: dict[_ManualTimer, float] = {}
        self._ticks: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward; the scopes whose time has come expire (call on the loop)."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._now += seconds
        loop_now = asyncio.get_running_loop().time()
        for scope, when in list(self._scopes.items()):
            if when <= self._now:
                del self._scopes[scope]
                scope.reschedule(loop_now)
        for timer, when in list(self._timers.items()):
            if when <= self._now:
                del self._timers[timer]
                timer.handle = asyncio.get_running_loop().call_soon(timer.callback)

    @contextlib.asynccontextmanager
    async def timeout_at(self, when: float | None) -> AsyncIterator[aio.Timeout]:
        async with aio.timeout(None) as scope:
            if when is not None and when <= self._now:
                scope.reschedule(asyncio.get_running_loop().time())
            elif when is not None:
                self._scopes[scope] = when
            try:
                yield scope
            finally:
                self._scopes.pop(scope, None)

    def call_at(self, when: float, callback: Callable[[], object]) -> Cancellable:
        timer = _ManualTimer(self._timers, callback)
        if when <= self._now:
            timer.handle = asyncio.get_running_loop().call_soon(callback)
        else:
            self._timers[timer] = when
        return timer

    async def epochs(self, period_s: float, rest: Rest | None = None) -> AsyncIterator[int]:
        # Epochs pass only by :meth:`tick`, one each, idle or not.
        while True:
            handled = await self._ticks.get()
            yield 1
            handled.set_result(None)  # the consumer is back for the next one: it is done

    async def tick(self, count: int = 1) -> None:
        """Let ``count`` epochs pass; return once the consumer of :meth:`epochs` handled them."""
        loop = asyncio.get_running_loop()
        for _ in range(count):
            handled: asyncio.Future[None] = loop.create_future()
            self._ticks.put_nowait(handled)
            await handled


class _ManualTimer:
    """A timer of :meth:`ManualClock.call_at`: waiting in its clock's table until
    :meth:`ManualClock.advance` reaches its time, then a callback of the loop."""

    __slots__ = ("_timers", "callback", "handle")

    def __init__(self, timers: dict[_ManualTimer, float], callback: Callable[[], object]) -> None:
        self._timers = timers
        self.callback = callback
        self.handle: asyncio.Handle | None = None

    def cancel(self) -> None:
        self._timers.pop(self, None)
        if self.handle is not None:
            self.handle.cancel()


class ManualMachineClock:
    """A machine clock its caller drives (:meth:`advance`), as :class:`ManualClock` is
    for wall time: a test fixes every arrival's cycle and when each schedule ends.

    Args:
        start: the cycle it starts at.
    """

    def __init__(self, start: int = 0) -> None:
        self._cycle = start
        self._waiters: set[asyncio.Event] = set()

    def start(self) -> None:
        """Nothing to start: it moves by :meth:`advance` only."""

    def cycle(self) -> int:
        return self._cycle

    def advance(self, cycles: int) -> None:
        """Move machine time forward by ``cycles`` (call on the loop)."""
        if cycles < 0:
            raise ValueError("machine time does not go backwards")
        self._cycle += cycles
        for moved in self._waiters:
            moved.set()

    async def wait(self, cycle: float, wake: asyncio.Event) -> None:
        while self._cycle < cycle and not wake.is_set():
            moved = asyncio.Event()
            self._waiters.add(moved)
            waits = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(moved.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waits:
                    task.cancel()
                self._waiters.discard(moved)


__all__ = ["ManualClock", "ManualMachineClock"]
