"""A pool task's future (qmk.kernel.pools.future): a concurrent.futures.Future in every
way a caller sees, threads that wait on it included, over a lock that is its own
condition."""

from __future__ import annotations

import functools
import gc
import threading
import weakref
from concurrent.futures import (
    CancelledError,
    Future,
    as_completed,
    wait,
)
from concurrent.futures import TimeoutError as FutureTimeout  # TimeoutError from 3.11

import pytest

from qmk.kernel.pools.future import LockCondition, TaskFuture


def test_a_task_future_holds_the_fields_of_a_future_of_this_python() -> None:
    # TaskFuture sets Future.__init__'s fields itself: a Python that adds one fails here
    assert sorted(vars(TaskFuture())) == sorted(vars(Future()))
    assert isinstance(TaskFuture()._condition, LockCondition)


def test_a_thread_waiting_for_the_result_wakes_when_another_sets_it() -> None:
    future = TaskFuture()
    assert future.set_running_or_notify_cancel()
    waiting = threading.Event()
    got: list[object] = []

    def waiter() -> None:
        waiting.set()
        got.append(future.result(timeout=60))

    thread = threading.Thread(target=waiter)
    thread.start()
    assert waiting.wait(timeout=60)
    future.set_result(7)
    thread.join(timeout=60)
    assert got == [7]


def test_an_exception_reaches_a_waiting_thread_and_a_timeout_is_a_timeout() -> None:
    future = TaskFuture()
    with pytest.raises(FutureTimeout):
        future.result(timeout=0)  # nothing set: the wait ends at its limit
    future.set_running_or_notify_cancel()
    threading.Timer(0.0, future.set_exception, (ValueError("no"),)).start()
    with pytest.raises(ValueError, match="no"):
        future.result(timeout=60)


def test_wait_and_as_completed_see_task_futures_end() -> None:
    futures = [TaskFuture() for _ in range(3)]
    for future in futures:
        future.set_running_or_notify_cancel()

    def settle() -> None:
        for index, future in enumerate(futures):
            future.set_result(index)

    threading.Timer(0.0, settle).start()
    assert sorted(f.result() for f in as_completed(futures, timeout=60)) == [0, 1, 2]
    done, pending = wait(futures, timeout=0)
    assert len(done) == 3 and not pending


def test_callbacks_run_once_in_order_and_a_cancelled_one_says_so() -> None:
    future = TaskFuture()
    seen: list[str] = []
    future.add_done_callback(lambda f: seen.append(f"first {f.result()}"))
    future.add_done_callback(lambda f: seen.append("second"))
    future.set_running_or_notify_cancel()
    future.set_result(1)
    future.add_done_callback(lambda f: seen.append("late"))  # done: called at once
    assert seen == ["first 1", "second", "late"]
    queued = TaskFuture()
    assert queued.cancel() and queued.cancelled()
    assert not queued.set_running_or_notify_cancel()
    with pytest.raises(CancelledError):
        queued.result(timeout=0)


@pytest.mark.parametrize("end", ["result", "exception", "cancel"])
def test_a_done_callback_that_holds_its_future_leaves_no_cycle_for_the_collector(
    end: str,
) -> None:
    """A run's callback holds the run's record, which holds the future: once called, the
    callback is dropped, so the future is freed when the last name of it goes, with the
    collector off."""
    called: list[object] = []
    future = TaskFuture()
    future.add_done_callback(functools.partial(lambda held, done: called.append(done), future))
    gone = weakref.ref(future)
    enabled = gc.isenabled()
    gc.disable()
    try:
        if end == "result":
            future.set_running_or_notify_cancel()
            future.set_result(1)
        elif end == "exception":
            future.set_running_or_notify_cancel()
            future.set_exception(ValueError("no"))
        else:
            future.cancel()
        assert called == [future]
        called.clear()
        del future
        assert gone() is None
    finally:
        if enabled:
            gc.enable()


def test_a_lock_condition_is_reentrant_and_waits_only_while_held() -> None:
    condition = LockCondition()
    with condition, condition:  # reentrant, as a future's callbacks need
        assert not condition.wait(timeout=0)
    with pytest.raises(RuntimeError):
        condition.wait(timeout=0)  # not held
