"""Each tenant's CPU budget for reading, lowering and checking programs, off the event loop.

A submit, a replay, a restore and a REST client's program text cost the kernel CPU
before any worker runs. That is reading the graph, verifying it, planning it (its
physical qubits) and lowering OpenQASM. :class:`CpuBudget` runs that work in a thread,
so the event loop, which answers every other client, is never held by it. It measures
the thread's CPU seconds and charges them to the tenant. The charge goes to a token
bucket (:mod:`qmk.rate`) of ``cpu_burst_s`` CPU seconds that gains ``cpu_s_per_s`` a
second of the kernel's clock.

The cost is known only once the work is done, so the bucket may go into debt. While it
holds no CPU second the tenant's next such request is refused at once, before any
work. The refusal is ``QS1006`` (``limit: "cpu_s_per_s"``) with ``retry_after_s``: the
seconds until its bucket is out of debt. A millisecond more is added, so a retry then
gets in. Other tenants' buckets are their own.

At most ``threads`` pieces of work run at once (the cores of a small host), and at most
one of each tenant. So a tenant that pipelines big programs holds one thread, not all.
The threads are started with the budget, not on first use. Starting a thread from the
loop waits for it to take the GIL. A thread already verifying a big graph holds the GIL
most of the time, so asyncio's default pool would stall the loop for long.

While work runs in the threads the cyclic garbage collector is paused. The work builds
hundreds of thousands of objects and no cycles. A collection it set off would rescan
the whole heap holding the GIL, the loop waiting. The interpreter's switch interval is
:data:`SWITCH_INTERVAL_S`, restored after. The loop, woken by a client, waits at most
that long for the GIL that a thread verifying a big graph holds. Python's default made
every request under such work wait several times over (``docs/kernel.md`` has the
figures of each interval tried).

>>> from qmk.kernel.manual_clock import ManualClock
>>> from qmk.errors import QuotaError
>>> budget = CpuBudget(rate=lambda t: 1.0, burst=lambda t: 0.5, clock=ManualClock(start=0.0))
>>> budget.spend("alice", 2.0)  # 0.5 held, 2.0 spent: 1.5 in debt
>>> try:
...     budget.check("alice", "a replay")
... except QuotaError as exc:
...     exc.details["retry_after_s"]  # out of debt then, by a millisecond
1.501
>>> budget.check("bob", "a replay")  # bob's bucket is his own
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from qmk.errors import QuotaError
from qmk.kernel.clock import Clock
from qmk.qvm.graph import promote_young
from qmk.rate import TokenBucket

T = TypeVar("T")

#: At most this many pieces of program work run in threads at once.
THREADS = 2
#: The interpreter's switch interval while program work runs (``sys.setswitchinterval``).
SWITCH_INTERVAL_S = 0.0002


_collector = threading.Lock()
# threads in _collector_paused; whether the collector ran before; the switch interval before
_pausers: list[Any] = [0, True, 0.005]


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic collector paused, and the switch interval short, while any thread is
    inside (both restored by the last)."""
    with _collector:
        if not _pausers[0]:
            _pausers[1] = gc.isenabled()
            _pausers[2] = sys.getswitchinterval()
            gc.disable()
            sys.setswitchinterval(min(SWITCH_INTERVAL_S, _pausers[2]))
        _pausers[0] += 1
    try:
        yield
    finally:
        with _collector:
            _pausers[0] -= 1
            if not _pausers[0]:
                sys.setswitchinterval(_pausers[2])
                if _pausers[1]:
                    promote_young()  # what the work built, unwalked by a young collection
                    gc.enable()


class _OnLoop:
    """:meth:`CpuBudget.on_loop`'s block (a class, not a generator's context manager:
    twice a submit, and the generator's objects cost more than the block's own work)."""

    __slots__ = ("_began", "_budget", "_tenant")

    def __init__(self, budget: CpuBudget, tenant: str) -> None:
        self._budget = budget
        self._tenant = tenant
        self._began = 0.0

    def __enter__(self) -> None:
        self._began = time.thread_time()

    def __exit__(self, *exc: object) -> None:
        self._budget.spend(self._tenant, time.thread_time() - self._began)


class CpuBudget:
    """Per-tenant CPU seconds for program work, and the threads that do it.

    Args:
        rate: a tenant's CPU seconds a second (its ``cpu_s_per_s``).
        burst: a tenant's CPU seconds at once (its ``cpu_burst_s``).
        clock: the kernel's clock (the buckets refill on it).
        threads: the most pieces of work in threads at once.
    """

    def __init__(
        self,
        *,
        rate: Callable[[str], float],
        burst: Callable[[str], float],
        clock: Clock,
        threads: int = THREADS,
    ) -> None:
        self._rate, self._burst, self.clock = rate, burst, clock
        self._buckets: dict[str, TokenBucket] = {}
        self._threads = asyncio.Semaphore(threads)
        self._tenant_locks: dict[str, asyncio.Lock] = {}
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="qmk-program")
        started = threading.Barrier(threads + 1)
        for _ in range(threads):  # each waits for the others: every thread is started
            self._pool.submit(started.wait)
        started.wait()

    def close(self) -> None:
        """Let the threads end (work in them runs to its end)."""
        self._pool.shutdown(wait=False)

    def _bucket(self, tenant: str) -> TokenBucket:
        rate, burst = self._rate(tenant), self._burst(tenant)
        now = self.clock.now()
        bucket = self._buckets.get(tenant)
        if bucket is None:
            bucket = self._buckets[tenant] = TokenBucket(rate=rate, burst=burst, now=now)
        elif (bucket.rate, bucket.burst) != (rate, burst):  # a reloaded config
            bucket.level(now)
            bucket.rate, bucket.burst = rate, burst
            bucket.tokens = min(bucket.tokens, burst)
        return bucket

    def check(self, tenant: str, what: str) -> None:
        """Refuse ``what`` while ``tenant``'s bucket holds no CPU second.

        Raises:
            QuotaError: ``limit: "cpu_s_per_s"``, with ``retry_after_s``.
        """
        bucket = self._bucket(tenant)
        held = bucket.level(self.clock.now())
        if held > 0:
            return
        wait = round(max(-held, 0.0) / bucket.rate + 0.001, 3)
        raise QuotaError(
            f"tenant {tenant!r} has spent its CPU budget for reading and checking programs "
            f"(cpu_s_per_s {bucket.rate:g}, cpu_burst_s {bucket.burst:g}): {what} is "
            f"refused; retry in {wait:.3g} s",
            limit="cpu_s_per_s",
            value=bucket.rate,
            retry_after_s=wait,
        )

    def spend(self, tenant: str, seconds: float) -> None:
        """Charge ``seconds`` of CPU to ``tenant`` (its bucket may go into debt)."""
        bucket = self._bucket(tenant)
        bucket.tokens = bucket.level(self.clock.now()) - max(seconds, 0.0)

    def on_loop(self, tenant: str) -> _OnLoop:
        """Charge the CPU the loop's thread spends in the block to ``tenant`` (raise or
        not)."""
        return _OnLoop(self, tenant)

    async def run(self, tenant: str, work: Callable[[], T]) -> T:
        """``work()`` in a thread (one of ``tenant``'s at a time, ``threads`` in all), its
        CPU seconds charged to ``tenant`` whether it returns or raises."""
        result, seconds = await self.measure(tenant, work)
        self.spend(tenant, seconds)
        return result

    async def measure(self, tenant: str, work: Callable[[], T]) -> tuple[T, float]:
        """:meth:`run` that leaves the charge of a success to the caller: ``work()``'s
        answer and its CPU seconds (a request that goes on to a syscall charges them once
        it is answered, so that syscall's own :meth:`check` does not refuse it for its
        own first part). Work that raises is charged at once."""
        lock = self._tenant_locks.setdefault(tenant, asyncio.Lock())
        spent = [0.0]

        def measured() -> T:
            began = time.thread_time()
            try:
                with _collector_paused():
                    return work()
            finally:
                spent[0] = time.thread_time() - began

        async with lock, self._threads:
            try:
                result = await asyncio.get_running_loop().run_in_executor(self._pool, measured)
            except BaseException:
                self.spend(tenant, spent[0])
                raise
        return result, spent[0]

    def __len__(self) -> int:
        return len(self._buckets)


__all__ = ["SWITCH_INTERVAL_S", "THREADS", "CpuBudget"]
