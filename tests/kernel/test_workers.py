"""The worker pool: real processes, real kills, a real memory cap."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError, wait

import pytest

from qmk.kernel.workers import TaskError, WorkerDied, WorkerKilled, WorkerMemoryError, WorkerPool


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    pool = WorkerPool(2, memory_mb=400)
    yield pool
    pool.shutdown(cancel_futures=True)


def live_workers(pool: WorkerPool, count: int, limit: float = 5.0) -> list[int]:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        pids = pool.pids
        if len(pids) == count:
            return pids
        time.sleep(0.01)
    raise AssertionError("the pool did not get back to full strength")


def test_tasks_return_their_values(pool: WorkerPool) -> None:
    futures = [pool.submit(math.factorial, n) for n in range(20)]
    assert [f.result(timeout=10) for f in futures] == [math.factorial(n) for n in range(20)]


def test_workers_are_persistent_processes(pool: WorkerPool) -> None:
    pids = {pool.submit(os.getpid).result(timeout=10) for _ in range(20)}
    assert pids <= set(live_workers(pool, 2)) and os.getpid() not in pids


def test_an_exception_comes_back_as_a_task_error(pool: WorkerPool) -> None:
    with pytest.raises(TaskError) as err:
        pool.submit(math.sqrt, -1).result(timeout=10)
    assert err.value.data["type"] == "builtins.ValueError" and "domain" in err.value.message


def test_cancel_kills_a_running_task_within_a_second_and_the_pool_recovers(
    pool: WorkerPool,
) -> None:
    before = set(live_workers(pool, 2))
    future = pool.submit(time.sleep, 30)
    while not future.running():
        time.sleep(0.005)
    started = time.monotonic()
    assert pool.cancel(future, "cancelled by test")
    with pytest.raises(WorkerKilled, match="cancelled by test"):
        future.result(timeout=1)
    assert pool.submit(abs, -3).result(timeout=1) == 3
    after = set(live_workers(pool, 2))
    assert time.monotonic() - started < 1.0
    assert len(before - after) == 1  # exactly the busy worker was replaced
    assert not pool.cancel(future)


def test_cancel_of_a_queued_task_drops_it(pool: WorkerPool) -> None:
    blockers = [pool.submit(time.sleep, 30) for _ in range(2)]
    queued = pool.submit(abs, -1)
    assert pool.cancel(queued)
    with pytest.raises(CancelledError):
        queued.result(timeout=1)
    for future in blockers:
        pool.cancel(future)
    live_workers(pool, 2)


def test_a_task_over_the_memory_cap_fails_and_its_worker_is_replaced(pool: WorkerPool) -> None:
    future = pool.submit(bytearray, 600 * 2**20)
    with pytest.raises(WorkerMemoryError):
        future.result(timeout=10)
    assert pool.submit(len, "abc").result(timeout=5) == 3


def test_a_worker_that_dies_fails_its_task_and_is_replaced(pool: WorkerPool) -> None:
    future = pool.submit(os._exit, 3)
    with pytest.raises(WorkerDied, match="exit code 3"):
        future.result(timeout=10)
    assert pool.submit(len, "ab").result(timeout=5) == 2
    live_workers(pool, 2)


def test_shutdown_stops_every_worker() -> None:
    pool = WorkerPool(1)
    future = pool.submit(time.sleep, 30)
    pids = live_workers(pool, 1)
    while not future.running():
        time.sleep(0.005)
    pool.shutdown(cancel_futures=True)
    wait([future], timeout=2)
    assert isinstance(future.exception(), WorkerKilled)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(RuntimeError):
        pool.submit(abs, 1)
