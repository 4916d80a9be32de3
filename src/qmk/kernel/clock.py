"""The kernel's clock: wall time, timeout scopes and the epoch tick, in one injectable object.

Everything the kernel does by the clock goes through a :class:`Clock`:

- ``now()``: wall-clock seconds, for job timestamps, session expiry and deadlines;
- ``timeout_at(when)``: an :func:`asyncio.timeout` scope that expires when ``now()``
  reaches ``when`` (a job's deadline, the limit of a ``q_wait``);
- ``call_at(when, callback)``: ``callback()`` on the loop once ``now()`` reaches
  ``when``, unless the handle it returns is cancelled first (a run's timeout: a timer,
  not a task, for each job on a worker);
- ``epochs(period_s, rest)``: the scheduler's clock, one item per tick, the number of
  epochs it counts. It is the only periodic wake-up of the kernel; preemption happens
  at a tick. While ``rest`` says the kernel holds no job, the real clock rests: one
  tick a :data:`REST_S` or at the next job, counting the epochs that passed.

:class:`SystemClock` is the real one. :class:`~qmk.kernel.manual_clock.ManualClock` is
driven by its caller, like Trio's ``MockClock``: its time moves only by its ``advance``
and an epoch passes only by its ``tick``, so a test of timeouts, deadlines, session
expiry or preemption is exact and takes no wall time (:mod:`qmk.kernel.manual_clock`,
with :class:`~qmk.kernel.manual_clock.ManualMachineClock` for machine time; the kernel
process never imports it).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from qmk import aio

#: The longest an idle kernel's ticker rests (seconds): the sweeps and expiries an epoch
#: runs keep their pace of about once a second, and nothing else needs a tick then.
REST_S = 1.0


class Rest:
    """When the epoch ticker may rest: the kernel holds no job a tick could act on.

    An idle kernel ticking every few milliseconds spent CPU for nothing. While
    ``idle()`` holds, the real clock waits for :meth:`wake` (a job arrives) or
    :data:`REST_S`, and its tick counts every epoch that passed meanwhile, so the count
    stays wall time.

    Args:
        idle: True while no job is held (queued, scheduled or running).
        limit_s: the longest rest.
    """

    __slots__ = ("_event", "idle", "limit_s")

    def __init__(self, idle: Callable[[], bool], limit_s: float = REST_S) -> None:
        self.idle = idle
        self.limit_s = limit_s
        self._event = asyncio.Event()

    def wake(self) -> None:
        """A job arrived: a resting ticker ticks at once and then keeps the pace."""
        self._event.set()

    async def until_woken(self) -> None:
        """Wait for :meth:`wake` or :attr:`limit_s`, whichever comes first."""
        self._event.clear()
        with contextlib.suppress(TimeoutError):
            async with aio.timeout(self.limit_s):
                await self._event.wait()


class Cancellable(Protocol):
    """A timer of :meth:`Clock.call_at` (an :class:`asyncio.TimerHandle`, say)."""

    def cancel(self) -> None:
        """Do not call its callback (nothing if it was called already)."""
        ...


class Alarm:
    """One timer of ``clock`` for many deadlines: set at the earliest time asked for, it
    calls ``callback`` once the clock reaches it (the caller asks again for the earliest
    deadline it has left). The runs' timeouts and the waits' limits each keep one, so
    neither holds an event-loop timer per job.

    >>> import asyncio
    >>> from qmk.kernel.manual_clock import ManualClock
    >>> async def demo():
    ...     clock = ManualClock(start=0.0)
    ...     rang = []
    ...     alarm = Alarm(clock, lambda: rang.append(clock.now()))
    ...     alarm.ask(5.0); alarm.ask(3.0); alarm.ask(9.0)  # set at 3, the earliest
    ...     clock.advance(4.0)
    ...     await asyncio.sleep(0)
    ...     return rang, alarm.at
    >>> asyncio.run(demo())
    ([4.0], inf)
    """

    __slots__ = ("_callback", "_clock", "_timer", "at")

    def __init__(self, clock: Clock, callback: Callable[[], object]) -> None:
        self._clock = clock
        self._callback = callback
        self._timer: Cancellable | None = None
        #: The time it is set at (inf: not set).
        self.at = math.inf

    def ask(self, when: float) -> None:
        """Ring at ``when`` if that is earlier than the time it is set at."""
        if when < self.at:
            if self._timer is not None:
                self._timer.cancel()
            self.at = when
            self._timer = self._clock.call_at(when, self._ring)

    def cancel(self) -> None:
        """Ring no more (until asked again)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self.at = None, math.inf

    def _ring(self) -> None:
        self._timer, self.at = None, math.inf
        self._callback()


class Clock(Protocol):
    """What the kernel needs of a clock (see the module docstring)."""

    def now(self) -> float:
        """Wall-clock seconds since the epoch."""
        ...

    def timeout_at(self, when: float | None) -> AbstractAsyncContextManager[object]:
        """A timeout scope that expires when :meth:`now` reaches ``when`` (None: never)."""
        ...

    def call_at(self, when: float, callback: Callable[[], object]) -> Cancellable:
        """Call ``callback()`` on the running loop once :meth:`now` reaches ``when`` (in
        a later loop turn), unless the returned handle is cancelled first."""
        ...

    def epochs(self, period_s: float, rest: Rest | None = None) -> AsyncIterator[int]:
        """One item per tick, the number of epochs of ``period_s`` seconds it counts,
        for as long as it is iterated; while ``rest`` is idle, ticks may be far apart."""
        ...


class SystemClock:
    """The real clock: :func:`time.time` and the event loop's timers."""

    #: :func:`time.time` itself: the kernel reads the clock some 15 times a job, and a
    #: method around it was a Python call each time
    now = staticmethod(time.time)

    def timeout_at(self, when: float | None) -> AbstractAsyncContextManager[object]:
        if when is None:
            return aio.timeout(None)
        loop = asyncio.get_running_loop()
        return aio.timeout_at(loop.time() + (when - time.time()))

    def call_at(self, when: float, callback: Callable[[], object]) -> Cancellable:
        loop = asyncio.get_running_loop()
        return loop.call_at(loop.time() + (when - self.now()), callback)

    async def epochs(self, period_s: float, rest: Rest | None = None) -> AsyncIterator[int]:
        # A real periodic tick, measured from the end of the previous one (so a busy loop
        # stretches epochs instead of bunching them).
        while True:
            if rest is not None and rest.idle():
                began = time.monotonic()
                await rest.until_woken()
                yield max(1, int((time.monotonic() - began) / period_s))
            else:
                await asyncio.sleep(period_s)
                yield 1


# --------------------------------------------------------------------------- machine time


class MachineClock(Protocol):
    """The shared machine's clock: logical cycles of machine time (``docs/machine.md``).

    Kept apart from :class:`Clock` (wall time): the machine's schedule depends on
    nothing but the cycles its jobs are stamped with at their arrival, so a test that
    drives the kernel's wall clock by hand still sees machine time pass, and a test that
    must fix arrivals holds this clock instead.
    """

    def start(self) -> None:
        """Start counting (the kernel's start): the clock stays at its first cycle before."""
        ...

    def cycle(self) -> int:
        """The machine cycle now (an arrival is stamped with it)."""
        ...

    async def wait(self, cycle: float, wake: asyncio.Event) -> None:
        """Return once the clock reaches ``cycle`` (inf: never) or ``wake`` is set (the
        clock may set ``wake`` itself when it reaches ``cycle``)."""
        ...


class RateClock:
    """Machine time at ``cycles_per_s`` logical cycles a second of this computer's
    monotonic time, from :meth:`start` (the kernel's start; 0 before it).

    >>> clock = RateClock(1e6)
    >>> clock.cycle()
    0
    """

    def __init__(self, cycles_per_s: float) -> None:
        if not cycles_per_s > 0:
            raise ValueError(f"cycles_per_s must be > 0, got {cycles_per_s!r}")
        self.rate = float(cycles_per_s)
        self._start: float | None = None

    def start(self) -> None:
        """Start the clock at cycle 0 now (once; a later call changes nothing)."""
        if self._start is None:
            self._start = time.monotonic()

    def _elapsed(self) -> float:
        return 0.0 if self._start is None else time.monotonic() - self._start

    def cycle(self) -> int:
        start = self._start  # _elapsed, inline: read a few times a job
        return 0 if start is None else int((time.monotonic() - start) * self.rate)

    async def wait(self, cycle: float, wake: asyncio.Event) -> None:
        """Return once the clock reaches ``cycle`` (inf: never) or ``wake`` is set: a
        timer sets ``wake`` itself at ``cycle`` (the caller clears it before its next
        wait). So a wait the clock ends raises nothing through the task: a timeout
        scope would cancel it, which costs more a wait."""
        if cycle == float("inf"):
            await wake.wait()
            return
        delay = max(0.0, cycle / self.rate - self._elapsed())
        timer = asyncio.get_running_loop().call_later(delay, wake.set)
        try:
            await wake.wait()
        finally:
            timer.cancel()


__all__ = [
    "Alarm",
    "Cancellable",
    "Clock",
    "MachineClock",
    "RateClock",
    "SystemClock",
]
