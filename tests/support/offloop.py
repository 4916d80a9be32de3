"""Work off the event loop, proven with a barrier: a :class:`Gate` that holds the work it
wraps when that runs off the loop's thread, while the test has the loop answer another
call (:func:`held_while_other_answered`). Work found on the loop's own thread passes
at once and is counted (holding it would hold the loop, and the test with it), so a
test of work that should be off the loop fails on it instead of racing the machine.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


class Gate:
    """Holds the work it wraps when that runs off the event loop's thread, until released.

    Work on the loop's thread passes at once and is counted (holding it would hold the
    loop, and the test with it).
    """

    def __init__(self, loop_thread: int) -> None:
        self.loop_thread = loop_thread
        self.entered = threading.Event()
        self.release = threading.Event()
        self.on_loop = 0
        self.armed = False

    def wrap(self, work: Callable[..., Any]) -> Callable[..., Any]:
        def gated(*args: Any, **kwargs: Any) -> Any:
            if self.armed:
                if threading.get_ident() == self.loop_thread:
                    self.on_loop += 1
                else:
                    self.entered.set()
                    assert self.release.wait(120), "the test never released the gate"
            return work(*args, **kwargs)

        return gated


async def held_while_other_answered(
    gate: Gate, work: Awaitable[Any], other: Callable[[], Awaitable[Any]]
) -> tuple[Any, Any]:
    """Run ``work`` until it reaches the gate; answer ``other`` while it is held; release.

    Fails when ``work`` ends without reaching the gate off the loop."""
    gate.armed = True
    task = asyncio.ensure_future(work)
    entered = asyncio.ensure_future(asyncio.to_thread(gate.entered.wait))
    done, _ = await asyncio.wait({task, entered}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        gate.entered.set()  # ends the wait above
        await entered
        pytest.fail(f"the work ended without being held off the loop (on the loop: {gate.on_loop})")
    try:
        answered = await other()  # the loop answers while the work is held
    finally:
        gate.release.set()
    result = await asyncio.gather(task, return_exceptions=True)
    gate.armed = False
    return answered, result[0]


__all__ = ["Gate", "held_while_other_answered"]
