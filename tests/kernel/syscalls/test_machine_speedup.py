"""The machine's speedup over ``exclusive`` is computed off the event loop, once a window;
so is the whole answer with it, once a window for each view of the machine.

``q_machine_status(speedup=true)`` runs the latest arrivals again under two policies.
Six tenants asking it at once share one computation, in a thread other than the
loop's; within ``SPEEDUP_WINDOW_S`` of the kernel's clock the figure is served again,
and the next window computes it anew. The count is taken at the live machine's public
``speedup_work`` (the real work runs), the time is a :class:`ManualClock` the test moves.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from qmk import defaults
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.service import Kernel
from support.kernel import BELL, login, run_kernel

SEED = 11


def test_six_asks_share_one_computation_off_the_loop_and_a_window_serves_it_again(
    tmp_path: Path,
) -> None:
    clock = ManualClock(start=1000.0)
    ran_in: list[int] = []

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        live = kernel.supervisor.machine.live
        real = live.speedup_work

        def counted() -> Any:
            work = real()

            def run() -> float | None:
                ran_in.append(threading.get_ident())
                return work()

            return run

        live.speedup_work = counted  # type: ignore[method-assign]
        for seed in range(SEED, SEED + 3):
            job = await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=seed)
            await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
        asks = [kernel.q_machine_status(session_id=sid, speedup=True) for _ in range(6)]
        figures = {m.speedup_vs_exclusive for m in await asyncio.gather(*asks)}
        assert len(ran_in) == 1 and threading.get_ident() not in ran_in
        assert None not in figures and figures == {real()()}  # these arrivals: computed again
        await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=SEED + 9)
        clock.advance(defaults.SPEEDUP_WINDOW_S - 0.001)
        again = await kernel.q_machine_status(session_id=sid, speedup=True)
        assert len(ran_in) == 1 and again.speedup_vs_exclusive in figures  # this window's
        clock.advance(0.001)
        await kernel.q_machine_status(session_id=sid, speedup=True)
        assert len(ran_in) == 2  # a new window, new arrivals: computed anew
        await kernel.q_machine_status(session_id=sid, speedup=True)
        assert len(ran_in) == 2  # no arrival since: known
        plain = await kernel.q_machine_status(session_id=sid)
        assert plain.speedup_vs_exclusive is None and len(ran_in) == 2

    run_kernel(tmp_path, body, workers=1, clock=clock)


def test_asks_with_the_speedup_make_each_view_of_the_machine_once_a_window(
    tmp_path: Path,
) -> None:
    clock = ManualClock(start=1000.0)
    views: list[tuple[str, bool]] = []

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        bob = await login(kernel, "bob", ["CAP_ALLOC"])
        machine = kernel.supervisor.machine
        real = machine.status

        def counted(tenant: str, *, operator: bool = False) -> Any:
            views.append((tenant, operator))
            return real(tenant, operator=operator)

        machine.status = counted  # type: ignore[method-assign]
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=SEED)
        await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        asks = [kernel.q_machine_status(session_id=alice, speedup=True) for _ in range(6)]
        asks += [kernel.q_machine_status(session_id=bob, speedup=True) for _ in range(6)]
        answers = await asyncio.gather(*asks)
        assert sorted(views) == [("alice", False), ("bob", False)]  # one each, six asks each
        assert len({id(a) for a in answers[:6]}) == 1 and answers[0] != answers[6]
        assert answers[0].speedup_vs_exclusive is not None
        clock.advance(defaults.SPEEDUP_WINDOW_S - 0.001)
        again = await kernel.q_machine_status(session_id=alice, speedup=True)
        assert again is answers[0] and len(views) == 2  # the same window: its answer
        await kernel.q_machine_status(session_id=alice)
        assert len(views) == 3  # an ask without the speedup: the machine now, each time
        clock.advance(0.001)
        fresh = await kernel.q_machine_status(session_id=alice, speedup=True)
        assert len(views) == 4 and fresh is not answers[0]  # the next window: made anew
        assert fresh.clock_cycle > answers[0].clock_cycle

    run_kernel(tmp_path, body, workers=1, clock=clock)
