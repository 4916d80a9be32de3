"""A process pool for jobs: persistent workers fed over pipes, with a memory cap and real kill.

:class:`WorkerPool` is a :class:`concurrent.futures.Executor`: ``submit(fn, *args)``
returns a :class:`~concurrent.futures.Future`, ``shutdown()`` stops the workers. Its one
extension is :meth:`WorkerPool.cancel`, which also stops a task that is already running:
it SIGKILLs the task's worker, fails the future with :class:`WorkerKilled` at once, and a
fresh worker takes the dead one's place. Anything that offers ``submit``, ``shutdown`` and
``cancel(future, reason)`` (a Dask ``distributed.Client`` wrapper, for instance) can take
this pool's place in the kernel.

Workers start from a ``forkserver`` (the default context) that has already imported the
modules in ``preload`` (the executor), so a new worker is ready in about 10 ms and a task
costs one pipe round trip. Each worker caps its own address space with
``setrlimit(RLIMIT_AS)``; a task that runs out of memory fails with
:class:`WorkerMemoryError` and its worker exits, to be replaced.

Functions and arguments travel by pickle, so ``fn`` must be importable (a module-level
function). Errors raised by ``fn`` come back as :class:`TaskError` carrying the exception
type and message (and ``to_json()`` of a :class:`~qmk.errors.QMKError`).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import multiprocessing
import multiprocessing.connection as mpc
import os
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

#: Modules a worker imports before its first task.
DEFAULT_PRELOAD: tuple[str, ...] = (
    "qmk.kernel.executor",
    "qmk.kernel.jobs",
    "qmk.kernel.stim_batch",
    "qmk.kernel.trajectories",
    "qmk.engines.stabilizer",
    "qmk.engines.statevector",
    "qmk.qec.logical",
    "stim",
)


class TaskError(Exception):
    """A task that did not return a value: ``kind`` says why, ``data`` holds details."""

    kind = "error"

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = dict(data or {})


class WorkerMemoryError(TaskError):
    """The task needed more memory than the worker's cap."""

    kind = "memory"


class WorkerKilled(TaskError):
    """The task's worker was killed on purpose (cancel, timeout, preemption, shutdown)."""

    kind = "killed"


class WorkerDied(TaskError):
    """The task's worker process ended unexpectedly (a crash, a signal from outside)."""

    kind = "died"


def _limit_memory(memory_mb: int | None) -> None:
    if memory_mb is None:
        return
    import resource

    cap = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _worker_main(conn: mpc.Connection, memory_mb: int | None) -> None:
    """A worker: run tasks from ``conn`` until it closes or sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_memory(memory_mb)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        task_id, fn, args, kwargs = message
        try:
            value = fn(*args, **kwargs)
            reply: tuple[Any, ...] = (task_id, "ok", value)
        except MemoryError:
            reply = (task_id, "memory", f"the job exceeded the worker memory cap ({memory_mb} MiB)")
        except BaseException as exc:
            data: dict[str, Any] = {"type": f"{type(exc).__module__}.{type(exc).__qualname__}"}
            to_json = getattr(exc, "to_json", None)
            if callable(to_json):
                with contextlib.suppress(Exception):
                    data["error"] = to_json()
            reply = (task_id, "error", (str(exc) or type(exc).__name__, data))
        try:
            conn.send(reply)
        except MemoryError:
            with contextlib.suppress(OSError):
                conn.send((task_id, "memory", "the job's result exceeded the worker memory cap"))
            return
        except OSError:
            return  # the pool went away
        if reply[1] == "memory":
            return  # the heap may be fragmented or half-full: let the pool start a fresh worker


@dataclass(slots=True, eq=False)
class _Task:
    task_id: int
    future: Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(slots=True, eq=False)
class _Worker:
    process: Any
    conn: mpc.Connection
    task: _Task | None = None
    killed: bool = False
    retiring: bool = False  # exits after its current reply (memory cap hit, broken pipe)
    extra: dict[str, Any] = field(default_factory=dict)


class WorkerPool(Executor):
    """Runs tasks in ``max_workers`` persistent worker processes.

    Args:
        max_workers: how many worker processes.
        memory_mb: address-space cap of each worker in MiB (None: no cap).
        context: the multiprocessing start method, "forkserver" (default) or "spawn".
        preload: modules each worker imports before its first task.
    """

    def __init__(
        self,
        max_workers: int = 2,
        *,
        memory_mb: int | None = None,
        context: str = "forkserver",
        preload: Iterable[str] = DEFAULT_PRELOAD,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        if context not in ("forkserver", "spawn"):
            raise ValueError("context must be 'forkserver' or 'spawn' (fork is unsafe here)")
        self._ctx = multiprocessing.get_context(context)
        if context == "forkserver":
            self._ctx.set_forkserver_preload(list(preload))
        self.max_workers = max_workers
        self.memory_mb = memory_mb
        self._lock = threading.Lock()
        self._pending: collections.deque[_Task] = collections.deque()
        self._by_future: dict[Future[Any], _Task] = {}
        self._running: dict[Future[Any], _Worker] = {}
        self._workers: list[_Worker] = []
        self._ids = itertools.count(1)
        self._shutdown = False
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
        self._wake_pending = False
        self.spawned = 0
        self._thread = threading.Thread(target=self._loop, name="qmk-worker-pool", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Queue ``fn(*args, **kwargs)`` for a worker; return its future."""
        future: Future[Any] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit after shutdown")
            task = _Task(next(self._ids), future, fn, args, kwargs)
            self._pending.append(task)
            self._by_future[future] = task
        self._wake()
        return future

    def cancel(self, future: Future[Any], reason: str = "cancelled") -> bool:
        """Stop ``future``'s task: drop it if queued, SIGKILL its worker if running.

        A running task's future fails at once with :class:`WorkerKilled` (``reason`` as
        its message); the pool starts a replacement worker. Returns False when the task
        already finished.
        """
        with self._lock:
            task = self._by_future.get(future)
            if task is None:
                return False
            worker = self._running.get(future)
            if worker is None:
                with contextlib.suppress(ValueError):
                    self._pending.remove(task)
                del self._by_future[future]
                if not future.cancel():  # re-queued after a broken pipe: already running
                    future.set_exception(WorkerKilled(reason, {"reason": reason}))
                return True
            worker.killed = True
            del self._running[future]
            del self._by_future[future]
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.process.pid, signal.SIGKILL)
        future.set_exception(WorkerKilled(reason, {"reason": reason}))
        self._wake()
        return True

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the pool. Running tasks are killed when ``cancel_futures`` is true."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                for task in list(self._pending):
                    task.future.cancel()
                    self._by_future.pop(task.future, None)
                self._pending.clear()
        if cancel_futures:
            for future in list(self._running):
                self.cancel(future, "shutdown")
        self._wake()
        if wait:
            self._thread.join()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        with self._lock:
            return [w.process.pid for w in self._workers if not w.killed]

    def busy(self) -> int:
        """How many tasks are running now."""
        with self._lock:
            return len(self._running)

    # ------------------------------------------------------------------ internals

    def _wake(self) -> None:
        if self._wake_pending:
            return  # a wake-up is already on its way
        self._wake_pending = True
        with contextlib.suppress(OSError):
            self._wake_w.send_bytes(b"")

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_worker_main, args=(child, self.memory_mb), name="qmk-worker", daemon=True
        )
        process.start()
        child.close()
        self.spawned += 1
        return _Worker(process=process, conn=parent)

    def _loop(self) -> None:
        try:
            self._run_loop()
        finally:
            with self._lock:
                workers, self._workers = self._workers, []
            for worker in workers:
                with contextlib.suppress(OSError, ValueError):
                    worker.conn.send(None)
            for worker in workers:
                worker.process.join(timeout=1.0)
                if worker.process.is_alive():
                    worker.process.kill()
                    worker.process.join()
                worker.conn.close()

    def _run_loop(self) -> None:
        while True:
            with self._lock:
                self._workers = [w for w in self._workers if not self._reap_if_dead(w)]
                done = self._shutdown and not self._pending and not self._running
                if not done:
                    failure = self._top_up()
                    if failure is not None:
                        for task in self._pending:
                            self._by_future.pop(task.future, None)
                            if task.future.set_running_or_notify_cancel():
                                task.future.set_exception(failure)
                        self._pending.clear()
                    self._assign()
                watch: list[Any] = [self._wake_r]
                for worker in self._workers:
                    watch.append(worker.conn)
                    watch.append(worker.process.sentinel)
            if done:
                return
            ready = mpc.wait(watch)
            for item in ready:
                if item is self._wake_r:
                    with contextlib.suppress(EOFError, OSError):
                        while self._wake_r.poll():
                            self._wake_r.recv_bytes()
                    # after draining, before the next look at the queue: a wake that saw
                    # the flag still set made its change before this and is seen then
                    self._wake_pending = False
                    continue
                for worker in self._workers:
                    if item is worker.conn:
                        self._receive(worker)

    def _top_up(self) -> TaskError | None:
        """With the lock held: start workers up to ``max_workers``; the error if one fails."""
        while len(self._workers) < self.max_workers:
            try:
                self._workers.append(self._spawn())
            except Exception as exc:
                # e.g. a __main__ script without the ``if __name__ == "__main__"`` guard
                return WorkerDied(f"cannot start a worker process: {exc}".strip())
        return None

    def _reap_if_dead(self, worker: _Worker) -> bool:
        """With the lock held: True (and fail its task) when ``worker`` has exited."""
        if worker.killed:
            worker.process.join()
            worker.conn.close()
            return True
        if worker.retiring and worker.task is None and worker.process.is_alive():
            worker.process.join(timeout=0.5)  # it exits right after its last reply
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        if worker.process.is_alive():
            return False
        worker.process.join()
        task = worker.task
        with contextlib.suppress(OSError, EOFError):
            while task is not None and worker.conn.poll():
                self._settle_locked(worker, worker.conn.recv())
                task = worker.task
        worker.conn.close()
        if task is not None:
            self._running.pop(task.future, None)
            self._by_future.pop(task.future, None)
            code = worker.process.exitcode
            task.future.set_exception(
                WorkerDied(f"the worker process ended (exit code {code})", {"exitcode": code})
            )
        return True

    def _receive(self, worker: _Worker) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            return  # the sentinel tells the rest next round
        with self._lock:
            self._settle_locked(worker, message)

    def _settle_locked(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        task_id, kind, value = message
        task = worker.task
        worker.task = None
        if kind == "memory":
            worker.retiring = True
        if task is None or task.task_id != task_id:
            return
        if self._running.pop(task.future, None) is None:
            return  # cancelled meanwhile
        self._by_future.pop(task.future, None)
        if kind == "ok":
            task.future.set_result(value)
        elif kind == "memory":
            task.future.set_exception(WorkerMemoryError(value, {"memory_mb": self.memory_mb}))
        else:
            message_text, data = value
            task.future.set_exception(TaskError(message_text, data))

    def _assign(self) -> None:
        for worker in self._workers:
            if not self._pending:
                return
            if worker.task is not None or worker.killed or worker.retiring:
                continue
            task = self._pending.popleft()
            if not task.future.running() and not task.future.set_running_or_notify_cancel():
                self._by_future.pop(task.future, None)
                continue
            try:
                worker.conn.send((task.task_id, task.fn, task.args, task.kwargs))
            except OSError:
                worker.retiring = True  # the worker is gone; the task waits for another
                self._pending.appendleft(task)
                continue
            except Exception as exc:
                self._by_future.pop(task.future, None)
                task.future.set_exception(TaskError(f"cannot send the task: {exc}"))
                continue
            worker.task = task
            self._running[task.future] = worker


__all__ = [
    "DEFAULT_PRELOAD",
    "TaskError",
    "WorkerDied",
    "WorkerKilled",
    "WorkerMemoryError",
    "WorkerPool",
]
