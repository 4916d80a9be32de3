"""The waits for jobs' ends (``q_wait``, ``q_submit``'s ``wait_ms``): each a future,
settled by its job's end or by its time limit, whichever comes first.

The limits are kept in **one heap** of ``(time, number, future)`` and watched by **one
timer** of the kernel's clock, set at the earliest limit it has seen (as the runs'
timeouts are, :mod:`.runs`). There is no timeout scope and no event-loop timer per wait,
whose heap asyncio orders by a Python ``__lt__``: many calls a job with thousands of
waits outstanding. A wait its job's end settled leaves its entry behind; the heap drops
such entries when they come up, and is rebuilt without them when they outnumber the live
waits (:data:`COMPACT_AT`).

>>> import asyncio
>>> from qmk.kernel.manual_clock import ManualClock
>>> async def demo():
...     clock = ManualClock()
...     waits = Waits(clock)
...     ended = asyncio.create_task(waits.until("job_a", clock.now() + 60))
...     limited = asyncio.create_task(waits.until("job_b", clock.now() + 1))
...     await asyncio.sleep(0)
...     waits.ended("job_a")
...     clock.advance(2)
...     await asyncio.wait_for(asyncio.gather(ended, limited), 10)
...     return waits.waiting
>>> asyncio.run(demo())
0
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

from qmk.kernel.clock import Alarm, Clock

#: Entries of settled waits the heap may hold beyond twice its live ones before it is
#: rebuilt without them.
COMPACT_AT = 64


class Waits:
    """The waits for jobs' ends (see the module docstring).

    Args:
        clock: the kernel's clock (the limits are its times).

    Made on the loop it serves (the waits' futures are its own).
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        # the loop the waits' futures belong to, asked once (Python 3.11 asks the pid of
        # the process at each get_running_loop: a system call a wait)
        self._loop = asyncio.get_running_loop()
        self._by_job: dict[str, list[asyncio.Future[None]]] = {}
        self._limits: list[tuple[float, int, asyncio.Future[None]]] = []
        self._numbers = itertools.count()
        #: How many waits are not settled yet.
        self.waiting = 0
        self._alarm = Alarm(clock, self._fired)

    async def until(self, job_id: str, when: float) -> None:
        """Wait until ``job_id`` ends (:meth:`ended`), the clock reaches ``when``, or the
        kernel closes (:meth:`close`); a cancel of the caller ends the wait too."""
        future: asyncio.Future[None] = self._loop.create_future()
        waiting = self._by_job.get(job_id)
        if waiting is None:
            self._by_job[job_id] = [future]
        else:
            waiting.append(future)
        limits = self._limits
        if len(limits) > COMPACT_AT + 2 * self.waiting:
            self._compact()
        heapq.heappush(limits, (when, next(self._numbers), future))
        self.waiting += 1
        self._alarm.ask(when)
        try:
            await future
        finally:
            self.waiting -= 1
            waiting = self._by_job.get(job_id)
            if waiting is not None:  # its limit, the close or a cancel: not its end
                if future in waiting:
                    waiting.remove(future)
                if not waiting:
                    del self._by_job[job_id]

    def ended(self, job_id: str) -> None:
        """``job_id`` ended: its waits are settled."""
        waiting = self._by_job.pop(job_id, None)
        if waiting is not None:
            for future in waiting:
                if not future.done():
                    future.set_result(None)

    def close(self) -> None:
        """The kernel closes: every wait is settled, and the timer goes."""
        for job_id in list(self._by_job):
            self.ended(job_id)
        self._alarm.cancel()

    def _fired(self) -> None:
        """The timer: settle each wait whose limit has come, then set the timer at the
        earliest limit of the waits left."""
        now = self.clock.now()
        limits = self._limits
        while limits and (limits[0][0] <= now or limits[0][2].done()):
            future = heapq.heappop(limits)[2]
            if not future.done():
                future.set_result(None)
        if limits:
            self._alarm.ask(limits[0][0])

    def _compact(self) -> None:
        """Drop the entries of settled waits from the heap."""
        self._limits = [entry for entry in self._limits if not entry[2].done()]
        heapq.heapify(self._limits)


__all__ = ["COMPACT_AT", "Waits"]
