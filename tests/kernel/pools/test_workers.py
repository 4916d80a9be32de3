"""The worker pool: real processes, real kills, a real memory cap, in both driving modes.

Every behaviour test runs against a thread-driven pool and a loop-driven one (an asyncio
loop running in a background thread; the test calls the pool from its own thread, as any
``Executor`` caller may).

A worker frozen in the middle of a reply is made by the tests' pool's ``stall`` hook
(:class:`support.pools.GatedPool`: a FIFO, a byte in it makes the next reply stop
half-written, ``SIGSTOP``). The tests wait
until the worker is stopped (its state in ``/proc``), never for a time; a watchdog
thread turns a kernel that hangs into a failure instead of a hung suite.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import pprint
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, wait
from pathlib import Path
from typing import Any

import pytest

from qmk.abi import replies
from qmk.execution.request import RunRequest
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.pools import wire
from qmk.kernel.pools.attempt import Attempt
from qmk.kernel.pools.pool import (
    TaskError,
    WorkerDied,
    WorkerKilled,
    WorkerMemoryError,
    WorkerPool,
)
from qmk.kernel.pools.workers import kernel_pool, planner_pool
from qmk.kernel.service import Kernel
from qmk.kernel.storage.store import GRAPH_PACKED_AHEAD
from support.isolation import forged_frame, hostile_value
from support.kernel import BELL, WorkerGate, login, make_config, run_kernel
from support.pools import GatedPool, Hooks, dict_answer, packed_junk_answer


class LoopThread:
    """An asyncio loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` run on the loop's thread; its value."""

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def make_pool(
    mode: str, workers: int, loop_thread: LoopThread | None, **options: Any
) -> WorkerPool:
    """A pool driven by a thread of its own or by the loop (with ``stall``, the tests'
    :class:`~support.pools.GatedPool`)."""
    kind = GatedPool if "stall" in options else WorkerPool
    if mode == "thread":
        return kind(workers, **options)
    assert loop_thread is not None
    return loop_thread.call(lambda: kind(workers, loop=loop_thread.loop, **options))


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    yield runner
    runner.close()


@pytest.fixture(scope="module", params=["thread", "loop"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pool(mode: str, loop_thread: LoopThread) -> Iterator[WorkerPool]:
    pool = make_pool(mode, 2, loop_thread, memory_mb=400)
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


def test_a_plain_function_runs_in_every_task_that_names_it(pool: WorkerPool) -> None:
    # a Python function crosses as its pickle, made once by the pool, read once a worker
    futures = [pool.submit(os.path.join, "a", str(n)) for n in range(8)]
    assert [f.result(timeout=10) for f in futures] == [f"a/{n}" for n in range(8)]


@pytest.mark.parametrize("size", [10, GRAPH_PACKED_AHEAD], ids=["small", "packed"])
def test_a_jobs_attempt_crosses_without_a_pickler_and_the_worker_runs_it_rebuilt(
    pool: WorkerPool, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    # an attempt reduces to a function of bytes (its MessagePack, a big program packed
    # beside): its task frame is made without pickling (wire.frame is not called), and
    # the worker's function sees the same attempt
    request = RunRequest(program_digest="ab" * 32, shots=10, seed=7)
    attempt = Attempt(request=request, program="[" + "0," * size + "0]", caps=("c",))

    def no_pickle(message: Any) -> Any:
        raise AssertionError(f"a task was pickled: {str(message)[:80]}")

    monkeypatch.setattr(wire, "frame", no_pickle)
    answers = [pool.submit(pprint.pformat, attempt).result(timeout=30) for _ in range(3)]
    monkeypatch.undo()
    assert answers == [pprint.pformat(attempt)] * 3
    # a task of any other argument is pickled as ever, the same pool's next
    assert pool.submit(os.path.join, "d", "e").result(timeout=10) == "d/e"


def test_a_function_that_cannot_be_pickled_fails_its_task_and_the_pool_goes_on(
    pool: WorkerPool,
) -> None:
    def local() -> int:  # not importable by its name: it cannot cross
        return 1

    with pytest.raises(TaskError, match="cannot send the task"):
        pool.submit(local).result(timeout=10)
    assert pool.submit(os.path.join, "b", "c").result(timeout=10) == "b/c"


def test_workers_are_persistent_processes(pool: WorkerPool) -> None:
    pids = {pool.submit(os.getpid).result(timeout=10) for _ in range(20)}
    assert pids <= set(live_workers(pool, 2)) and os.getpid() not in pids


def test_an_exception_comes_back_as_a_task_error(pool: WorkerPool) -> None:
    with pytest.raises(TaskError) as err:
        pool.submit(math.sqrt, -1).result(timeout=10)
    assert err.value.data["type"] == "builtins.ValueError" and "domain" in err.value.message


def test_cancel_kills_a_running_task_at_once_and_the_pool_recovers(pool: WorkerPool) -> None:
    before = set(live_workers(pool, 2))
    future = pool.submit(signal.pause)  # never ends on its own
    while not future.running():
        time.sleep(0.005)
    assert pool.cancel(future, "cancelled by test")
    assert future.done()  # failed at once, not when the worker gets round to it
    with pytest.raises(WorkerKilled, match="cancelled by test"):
        future.result(timeout=0)
    assert pool.submit(abs, -3).result(timeout=30) == 3
    after = set(live_workers(pool, 2))
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


def test_shutdown_stops_every_worker(mode: str, loop_thread: LoopThread) -> None:
    pool = make_pool(mode, 1, loop_thread)
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


def test_a_done_callback_may_submit_again_and_the_chain_completes(pool: WorkerPool) -> None:
    finished: Future[int] = Future()

    def chain(done: Future[int]) -> None:
        value = done.result()
        if value >= 5:
            finished.set_result(value)
        else:
            pool.submit(abs, value + 1).add_done_callback(chain)

    pool.submit(abs, 0).add_done_callback(chain)
    assert finished.result(timeout=10) == 5


def test_a_loop_driven_pool_uses_no_thread_and_sends_at_once_from_the_loop(
    loop_thread: LoopThread,
) -> None:
    threads = threading.active_count()
    pool = make_pool("loop", 2, loop_thread)
    try:
        assert threading.active_count() == threads  # no dispatcher thread
        live_workers(pool, 2)

        def submit_on_loop() -> tuple[Future[int], bool]:
            future = pool.submit(abs, -7)
            return future, future.running()  # already in an idle worker's pipe

        future, running = loop_thread.call(submit_on_loop)
        assert running
        assert future.result(timeout=10) == 7
        called = threading.Event()
        callback_threads: list[int] = []

        def record(_: Future[int]) -> None:
            callback_threads.append(threading.get_ident())
            called.set()

        def submit_with_callback() -> Future[int]:
            second = pool.submit(abs, -8)
            second.add_done_callback(record)  # on the loop: before it can complete
            return second

        second = loop_thread.call(submit_with_callback)
        assert second.result(timeout=10) == 8
        assert called.wait(timeout=30)  # callbacks run just after result() can return
        assert callback_threads == [loop_thread.thread.ident]  # completed by the loop
    finally:
        pool.shutdown(cancel_futures=True)


def test_a_loop_driven_pool_shut_down_on_its_loop_waits_for_running_tasks(
    loop_thread: LoopThread,
) -> None:
    pool = make_pool("loop", 1, loop_thread)
    future = pool.submit(time.sleep, 0.2)
    while not future.running():
        time.sleep(0.005)
    loop_thread.call(pool.shutdown)  # wait=True on the loop's own thread: drives it there
    assert future.done() and future.result() is None
    assert pool.pids == []


# --------------------------------------------------------------------------- frozen workers


def stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (``SIGSTOP``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] == "T"


def frozen_worker(pool: WorkerPool, limit_s: float = 60.0) -> int:
    """The pid of the pool's worker stopped mid-reply (the limit only guards a hang)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        for pid in pool.pids:
            if stopped(pid):
                return pid
        time.sleep(0.005)
    raise AssertionError("no worker stopped")


@pytest.mark.parametrize("mode", ["thread", "loop"])
def test_a_worker_stopped_in_the_middle_of_a_reply_holds_only_its_own_task(
    mode: str, loop_thread: LoopThread, tmp_path: Path
) -> None:
    with WorkerGate(tmp_path, "stall") as stall:
        pool = make_pool(mode, 2, loop_thread, stall=stall.path)
        try:
            stall.release(1)  # the next reply stops half-written
            frozen = pool.submit(bytes, 200_000)
            pid = frozen_worker(pool)
            others = [pool.submit(abs, -n) for n in range(20)]
            assert [f.result(timeout=30) for f in others] == list(range(20))  # not stuck
            assert not frozen.done()
            assert pool.cancel(frozen, "timeout")  # what the kernel does when time is up
            with pytest.raises(WorkerKilled, match="timeout"):
                frozen.result(timeout=0)
            assert pid not in live_workers(pool, 2)
            assert pool.submit(len, "abc").result(timeout=30) == 3
        finally:
            pool.shutdown(cancel_futures=True)


@pytest.mark.parametrize("mode", ["thread", "loop"])
def test_a_reply_that_comes_in_pieces_is_put_back_together(
    mode: str, loop_thread: LoopThread, tmp_path: Path
) -> None:
    with WorkerGate(tmp_path, "stall") as stall:
        pool = make_pool(mode, 1, loop_thread, stall=stall.path)
        try:
            stall.release(1)
            future = pool.submit(bytes, 300_000)
            pid = frozen_worker(pool)
            assert not future.done()
            os.kill(pid, signal.SIGCONT)  # it writes the rest
            assert future.result(timeout=30) == bytes(300_000)
            assert pool.submit(abs, -2).result(timeout=30) == 2  # the same worker goes on
            assert pool.pids == [pid]
        finally:
            pool.shutdown(cancel_futures=True)


def test_tasks_larger_than_a_socket_holds_reach_their_workers_and_answer(
    pool: WorkerPool,
) -> None:
    # each task waits in the pool's line for room (loop mode: the loop watches that
    # worker's socket for it); the tasks sent after them wait for their turn
    big = [b"t" * ((8 << 20) + i) for i in range(3)]
    futures = [pool.submit(len, data) for data in big] + [pool.submit(abs, -5)]
    assert [f.result(timeout=60) for f in futures] == [(8 << 20) + i for i in range(3)] + [5]


def test_a_request_to_a_worker_that_does_not_read_waits_in_the_pool(pool: WorkerPool) -> None:
    future = pool.submit(signal.pause)  # never reads its requests
    while not future.running():
        time.sleep(0.005)
    big = b"r" * (8 << 20)  # far more than a socket holds
    assert all(pool.request(future, big) for _ in range(4))  # none of them waits
    assert pool.cancel(future)
    live_workers(pool, 2)


def test_a_reply_that_is_not_plain_data_fails_its_task_and_runs_nothing(
    pool: WorkerPool, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(TaskError, match="not plain data"):
        pool.submit(hostile_value, str(marker)).result(timeout=30)
    assert not marker.exists()  # the pool unpickled no code
    assert pool.submit(abs, -4).result(timeout=30) == 4


def test_a_worker_that_announces_a_frame_past_its_memory_cap_is_killed(pool: WorkerPool) -> None:
    with pytest.raises(WorkerDied, match="broke the pool's protocol"):
        pool.submit(forged_frame, 2**40).result(timeout=30)
    assert pool.submit(abs, -5).result(timeout=30) == 5
    live_workers(pool, 2)


class Watchdog:
    """Kills the stopped workers of a kernel that stops answering (a hang guard only:
    a working kernel never lets it fire)."""

    def __init__(self, limit_s: float = 120.0) -> None:
        self.pool: WorkerPool | None = None
        self.fired = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(limit_s,), daemon=True)
        self._thread.start()

    def _watch(self, limit_s: float) -> None:
        if self._done.wait(limit_s) or self.pool is None:
            return
        self.fired = True
        for pid in self.pool.pids:
            if stopped(pid):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def test_a_kernel_keeps_serving_while_a_worker_is_frozen_mid_reply_and_times_its_job_out(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    watchdog = Watchdog()

    async def body(kernel: Kernel) -> None:
        watchdog.pool = kernel.pool
        alice = await login(kernel, "alice")
        bob = await login(kernel, "bob")
        stall.release(1)  # alice's job stops half-way through its reply
        job = await kernel.q_submit(
            session_id=alice, graph=BELL, shots=10, seed=1, policy={"timeout_ms": 5000}
        )
        pid = await asyncio.to_thread(frozen_worker, kernel.pool)
        reply = await kernel.q_status(session_id=alice, job_id=job.job_id)
        assert reply.state == "RUNNING"  # the kernel answers
        other = await kernel.q_submit(session_id=bob, graph=BELL, shots=10, seed=2)
        done = await kernel.q_wait(session_id=bob, job_id=other.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"  # another tenant's job runs meanwhile
        clock.advance(5)  # alice's job's time is up
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        assert done.state == "TIMED_OUT" and done.error.name == "timeout"
        assert pid not in kernel.pool.pids and not stopped(pid)  # killed
        after = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=3)
        done = await kernel.q_wait(session_id=alice, job_id=after.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"  # the next job runs

    with WorkerGate(tmp_path, "stall") as stall:
        try:
            run_kernel(tmp_path, body, workers=2, clock=clock, hooks=stall.stall_hooks())
        finally:
            watchdog.stop()
    assert not watchdog.fired, "the kernel stopped answering while a worker was frozen"


@pytest.mark.parametrize("probe", [dict_answer, packed_junk_answer])
def test_a_worker_answer_that_is_no_typed_outcome_fails_its_job_with_a_code(
    tmp_path: Path, probe: Any
) -> None:
    async def body(kernel: Kernel) -> replies.Job:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=1)
        return await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)

    done = run_kernel(tmp_path, body, workers=1, hooks=Hooks(probe=probe))
    assert done.state == "FAILED" and done.result is None
    assert done.error.code == "QK202" and "no outcome" in done.error.message


# --------------------------------------------------------------------------- a broken line


def exited(pid: int, limit_s: float = 60.0) -> None:
    """Wait until process ``pid`` has exited (gone, or a zombie): every socket it held is
    closed then (the limit only guards a hang)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} did not exit")


def requeued_on_a_broken_line(loop: asyncio.AbstractEventLoop) -> tuple[WorkerPool, Future[int]]:
    """A pool of one worker on ``loop`` (not running: the test drives it) whose worker is
    dead, and a task the pool sent it: the send met the closed socket (``EPIPE``), so the
    task is running already (sent once) and waits in the queue for another worker."""
    pool = WorkerPool(1, loop=loop)  # on this thread: its loop's own
    [pid] = pool.pids
    os.kill(pid, signal.SIGKILL)
    exited(pid)  # its end of the socket is closed; the loop has not looked yet
    future = pool.submit(abs, -5)
    assert future.running() and not future.done()
    return pool, future


def test_a_task_requeued_after_its_workers_line_broke_fails_when_no_worker_can_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.new_event_loop()
    try:
        pool, future = requeued_on_a_broken_line(loop)

        def refused(self: Any) -> None:
            raise OSError(11, "Resource temporarily unavailable")  # fork's EAGAIN

        monkeypatch.setattr(multiprocessing.get_context("forkserver").Process, "start", refused)
        errors: list[str] = []
        raised = asyncio.Event()

        def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            errors.append(str(context.get("exception", context["message"])))
            raised.set()

        loop.set_exception_handler(handler)

        async def outcome() -> None:
            # the loop reaps the dead worker, fails to start another and fails the
            # queued task at once (the bound guards only a hang); a callback of the
            # pool that raises ends the wait too
            ended = asyncio.wrap_future(future)
            alarm = asyncio.ensure_future(raised.wait())
            await asyncio.wait([ended, alarm], timeout=60, return_when=asyncio.FIRST_COMPLETED)
            alarm.cancel()
            if ended.done():  # its error read here: an unread one is reported when it is freed
                ended.exception()

        loop.run_until_complete(outcome())
        assert errors == []  # no callback of the pool raised
        with pytest.raises(WorkerDied, match=r"cannot start a worker process: .*unavailable"):
            future.result(timeout=0)
        pool.shutdown()
        assert pool.pids == []
    finally:
        loop.close()


def test_shutdown_fails_a_task_requeued_after_its_workers_line_broke() -> None:
    loop = asyncio.new_event_loop()
    try:
        pool, future = requeued_on_a_broken_line(loop)
        pool.shutdown(wait=False, cancel_futures=True)
        assert future.done()  # a running future cannot be cancelled: it fails instead
        with pytest.raises(WorkerKilled, match="shutdown"):
            future.result(timeout=0)
        assert pool.pids == []
    finally:
        loop.close()


# --------------------------------------------------------------------------- the planner


def _address_cap(pid: int) -> str:
    """The ``Max address space`` soft limit of process ``pid`` (``/proc/PID/limits``)."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            return line.split()[3]
    raise AssertionError(f"no address-space line for {pid}")


def test_the_planner_process_is_capped_at_the_workers_memory(
    loop_thread: LoopThread, tmp_path: Path
) -> None:
    config = make_config(worker_memory_mb=768)
    data = tmp_path / "data"
    data.mkdir()

    def pools() -> tuple[WorkerPool, WorkerPool]:
        loop = loop_thread.loop
        return planner_pool(config, data, loop), kernel_pool(config, data, workers=1, loop=loop)

    planner, worker = loop_thread.call(pools)
    try:
        # a task answered: each has confined itself before it read one
        caps = [
            _address_cap(pool.submit(os.getpid).result(timeout=60)) for pool in (planner, worker)
        ]
    finally:
        for pool in (planner, worker):
            loop_thread.call(pool.shutdown)
    assert caps == [str(768 * 2**20)] * 2
