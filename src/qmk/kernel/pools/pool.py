"""A process pool for tasks: confined workers fed over pipes, with real kill and limits.

:class:`WorkerPool` is a :class:`concurrent.futures.Executor`: ``submit(fn, *args)``
returns a :class:`~concurrent.futures.Future`, ``shutdown()`` stops the workers. Its one
extension is :meth:`WorkerPool.cancel`, which also stops a task that is already running:
it SIGKILLs the task's worker, fails the future with :class:`WorkerKilled` at once, and a
fresh worker takes the dead one's place. Anything that offers ``submit``, ``shutdown`` and
``cancel(future, reason)`` (a Dask ``distributed.Client`` wrapper, for instance) can take
this pool's place in the kernel. The pool knows nothing of jobs: the kernel's wiring of
it (its limits, its data directory, the modules its workers preload) is
:mod:`qmk.kernel.pools.workers`.

Two ways to drive the workers, one state machine:

- **thread mode** (``loop=None``, the default): a dispatcher thread of the pool waits on
  the workers' sockets and exit sentinels; ``submit`` from any thread wakes it through a
  pipe. Good for synchronous callers.
- **loop mode** (``loop=`` an asyncio loop, the pool created on that loop's thread): no
  thread at all. The loop watches each worker's socket and sentinel (``add_reader``,
  and ``add_writer`` while a message to it waits); ``submit`` on the loop's thread
  writes the task straight into an idle worker's socket, and a worker's reply is read,
  its future completed and the worker handed its next queued task in one reader
  callback. The kernel uses this mode. Calls from other threads still work (they hop
  onto the loop with ``call_soon_threadsafe``).

**The pool never waits on a worker.** Its end of every worker's line (a pipe each way)
is non-blocking (:mod:`qmk.kernel.pools.wire`: frames of pickles, buffered both ways). A
worker stopped in the middle of a reply (``SIGSTOP``, a swapped-out machine, a hostile
task) holds only its own task. The other workers, the loop and the kernel's timers go
on. When the task's time is up :meth:`~WorkerPool.cancel` kills the worker. Replies
are plain data, unpickled with no global allowed: a worker cannot make the pool run
code. A frame longer than the worker's memory cap breaks the protocol: the worker is
killed and its task fails with :class:`WorkerDied`.

Futures complete outside the pool's lock, so a done-callback may call the pool again.

Workers start from a ``forkserver`` (the default context), which may have imported
modules for them already (``preload``), so a new worker is ready at once and a task
costs one round trip. Each worker confines itself before its first task
(:mod:`qmk.kernel.pools.sandbox`). The layers are no network, a Landlock filesystem, an
unprivileged user when the pool runs as root, rlimits on memory, CPU time and file size,
a private temp dir and no inherited descriptors. The worker tells the pool what holds
(:attr:`WorkerPool.confinement`). The pool logs it once, with a warning for every gap. A
worker whose pool dies without a
word (``kill -9`` of the pool's process) ends at once, whatever its task is doing. A
thread of it waits for its socket to close
(:func:`~qmk.kernel.pools.worker.exit_when_closed`, for any job process fed over a
socket). A worker of the forkserver also has the OS kill it when the
forkserver, which ends with the pool's process, does: that covers a task in one long C
call that holds the GIL, where the thread cannot run. A task that runs out of memory
fails with :class:`WorkerMemoryError`, one past its CPU time with
:class:`WorkerCpuLimit`; either worker is replaced.

Functions and arguments travel by pickle, so ``fn`` must be importable (a module-level
function). A plain function crosses as its own pickle, made once per pool and read once
per worker (:func:`qmk.kernel.pools.worker._function_of`). Pickling a function by name
would import its module and look the name up again each time. That is about as much
work as the rest of a small job's task.
Errors raised by ``fn`` come back as :class:`TaskError` carrying the exception
type and message (and ``to_json()`` of a :class:`~qmk.errors.QMKError`).

**Talking to a running task.** A task's function may send the pool notes while it
runs (:func:`~qmk.kernel.pools.worker.current_link`, its ``notify``); the pool hands each to the
listener :meth:`WorkerPool.listen` set on the task's future, before the task's result.
The pool may send a running task requests (:meth:`WorkerPool.request`): they wait in the
socket until the task looks (the link's ``pending``, ``requests``, or ``wait`` beside
a descriptor of its own). No signal announces them: a
signal could reach a fresh worker before it installs its handler and kill it. The
kernel's checkpoints and preemptions at fences travel this way. A task that needs an
answer of the pool's owner asks (the link's ``ask``: a note, then it waits for the
request that answers it): the assistant's tools ask the kernel so.

**The worker's side** (its loop, its confinement, the task's line) is
:mod:`qmk.kernel.pools.worker`: a worker starts at :func:`worker_entry`, which imports
it there, so the process that holds the pool loads none of it.

**Around each task** (``hooks=``, a :class:`WorkerHooks`): what a worker does before it
confines itself, how it runs each task and how it sends each reply. The default runs
the task as it is; a subclass may hold, wrap, replace or time tasks, or shape their
replies (the tests' gates and probes do: ``tests/support/pools.py``).

>>> pool = WorkerPool(1, isolation=None)
>>> pool.submit(pow, 2, 10).result(timeout=30)
1024
>>> pool.shutdown()
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import multiprocessing
import multiprocessing.connection as mpc
import os
import pickle
import select
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from types import FunctionType
from typing import TYPE_CHECKING, Any

from qmk.kernel.pools.future import TaskFuture
from qmk.kernel.pools.sandbox import Isolation, Plan, Sandboxes
from qmk.kernel.pools.wire import Broken, PoolLine, take_fd, task_frame, task_prefix
from qmk.kernel.pools.wire import message as read_message

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext, SpawnContext

    from qmk.kernel.pools.worker import TaskLink
    from qmk.kernel.pools.worker_line import WorkerLine

#: The workers' reports are logged under the name they always had (log filters use it).
_log = logging.getLogger("qmk.kernel.pools.workers")


# --------------------------------------------------------------------------- errors


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


class WorkerCpuLimit(TaskError):
    """The task used more CPU time than the worker's limit (``RLIMIT_CPU``)."""

    kind = "cpu"


class WorkerKilled(TaskError):
    """The task's worker was killed on purpose (cancel, timeout, preemption, shutdown)."""

    kind = "killed"


class WorkerDied(TaskError):
    """The task's worker process ended unexpectedly (a crash, a signal from outside), or
    broke the pool's protocol and was killed."""

    kind = "died"


class WorkerLost(TaskError):
    """The capacity the task ran on went away (a pool's server died, not the task's
    worker): no fault of the task. The kernel queues its job again, as a preemption,
    to resume from its latest checkpoint."""

    kind = "lost"


# --------------------------------------------------------------------------- the worker


class WorkerHooks:
    """What a pool's workers do around their tasks; a subclass changes it (``hooks=``).

    The pool pickles its hooks into every worker it starts. So a subclass must be
    importable there, and its attributes plain. In the worker :meth:`start` runs once,
    before the worker confines itself. Then :meth:`run` runs each task and :meth:`reply`
    sends each task's outcome. The state a subclass keeps in the worker
    lives as long as the worker. The default runs each task as it is.

    >>> class Counted(WorkerHooks):
    ...     def start(self):
    ...         self.tasks = 0
    ...         return ()
    ...     def run(self, link, fn, args, kwargs):
    ...         self.tasks += 1
    ...         return (self.tasks, fn(*args, **kwargs))
    """

    def start(self) -> Iterable[int]:
        """Prepare, in the worker, before it confines itself: import what the hooks
        need and open what they read later (after it the filesystem may be closed).

        Returns:
            The descriptors to keep open (the worker closes every other).
        """
        return ()

    def run(
        self, link: TaskLink, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Run one task: ``fn(*args, **kwargs)``; ``link`` is its line to the pool.

        Its value is the task's; an exception fails the task
        (:class:`~qmk.kernel.pools.worker.PoolClosed` ends the worker without a reply).
        """
        return fn(*args, **kwargs)

    def reply(self, line: WorkerLine, message: Any) -> None:
        """Send a task's outcome (a message of the pool's protocol) down ``line``."""
        line.send(message)


def worker_entry(
    ends: tuple[mpc.Connection, mpc.Connection],
    plan: Plan | None,
    memory_mb: int | None,
    hooks: WorkerHooks,
    from_forkserver: bool = False,
) -> None:
    """Where a worker process starts: the worker's side
    (:func:`qmk.kernel.pools.worker.worker_main`), imported in the worker only."""
    from qmk.kernel.pools.worker import worker_main

    worker_main(ends, plan, memory_mb, hooks, from_forkserver)


# --------------------------------------------------------------------------- the pool


@dataclass(slots=True, eq=False)
class _Task:
    task_id: int
    future: Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    listener: Callable[[Any], None] | None = None
    sent: bool = False  # handed to a worker once (its future is running)


@dataclass(slots=True, eq=False)
class _Worker:
    process: Any
    line: PoolLine
    temp_dir: str | None = None
    task: _Task | None = None
    killed: bool = False
    retiring: bool = False  # exits after its current reply (memory cap hit, broken pipe)
    closed: bool = False  # its end of the line is closed: only its sentinel matters
    fds: tuple[int, int] | None = None  # (line's read end, sentinel) watched by the loop
    writing: bool = False  # loop mode: the loop waits for its line to take more
    kill_timer: Any = None  # loop mode: kills a retiring worker that does not exit


class _Framing:
    """How a pool's tasks cross to their workers.

    - A plain function crosses as its pickle, made once (a worker reads it once:
      :func:`_function_of`).
    - A task of one argument that reduces to a plain function of bytes (an attempt of a
      job) crosses in a task frame made without a pickler
      (:func:`~qmk.kernel.pools.wire.task_frame`).
    - Any other crosses as the pickle of its message."""

    __slots__ = ("_functions", "_prefixes")

    def __init__(self) -> None:
        #: Each plain function's pickle, made once (:meth:`pickled`).
        self._functions: dict[Callable[..., Any], bytes] = {}
        #: The prefix of the task frames of each task function and argument rebuilder
        #: (:meth:`task_frame`), made once.
        self._prefixes: dict[tuple[Callable[..., Any], Callable[..., Any]], bytes] = {}

    def send(self, line: PoolLine, task: _Task) -> bool:
        """Send ``task`` down ``line`` (:meth:`PoolLine.send`'s answer).

        Raises:
            OSError: the worker's end is gone; anything else: the task cannot cross
            (nothing was queued).
        """
        data = self.task_frame(task)
        if data is not None:
            return line.send_frame(data)
        return line.send((task.task_id, self.pickled(task.fn), task.args, task.kwargs))

    def task_frame(self, task: _Task) -> bytes | None:
        """``task``'s frame made without a pickler (:func:`~qmk.kernel.pools.wire.task_frame`)
        where its function is a plain function and its one argument's class reduces it
        to a plain function of bytes (an attempt of a job), else None: it crosses as a
        pickle.

        Raises:
            pickle.PicklingError, AttributeError: a function not importable by its name;
            what the argument's ``__reduce__`` raises.
        """
        args = task.args
        if task.kwargs or len(args) != 1 or type(task.fn) is not FunctionType:
            return None
        reduce = type(args[0]).__dict__.get("__reduce__")  # its class's own, not object's
        if reduce is None:
            return None
        reduced = reduce(args[0])
        if type(reduced) is not tuple or len(reduced) != 2:
            return None
        rebuilder, parts = reduced
        if type(rebuilder) is not FunctionType or type(parts) is not tuple or len(parts) > 255:
            return None
        for part in parts:
            if part is not None and type(part) is not bytes:
                return None
        prefix = self._prefixes.get((task.fn, rebuilder))
        if prefix is None:
            prefix = task_prefix(self.pickled(task.fn), self.pickled(rebuilder))
            self._prefixes[task.fn, rebuilder] = prefix
        return task_frame(task.task_id, prefix, parts)

    def pickled(self, fn: Callable[..., Any]) -> Any:
        """What crosses for the task function ``fn``: a plain function's pickle, made
        once (the worker reads it once: :func:`_function_of`), or ``fn`` itself (a
        callable object, pickled with the task).

        Raises:
            pickle.PicklingError, AttributeError: a function not importable by its name.
        """
        if type(fn) is not FunctionType:
            return fn
        data = self._functions.get(fn)
        if data is None:
            data = self._functions[fn] = pickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
        return data


#: A completion to deliver once the pool's lock is released: (future, value, exception).
_Outcome = tuple[Future[Any], Any, BaseException | None]


class WorkerPool(Executor):
    """Runs tasks in ``max_workers`` persistent, confined worker processes.

    Its tables (the queue, the running tasks, the workers, the outcomes to deliver)
    change together under one lock. Both drivers (a thread of its own, or an event loop)
    run the one state machine on them. A worker's start, its task, its reply and its
    reaping each touch all of them. Split, each part would reach into
    the others' state. What stands apart is apart: the line (:mod:`qmk.kernel.pools.wire`),
    the workers' confinement (:class:`~qmk.kernel.pools.sandbox.Sandboxes`), what a worker
    does around a task (:class:`WorkerHooks`).

    Args:
        max_workers: how many worker processes.
        memory_mb: address-space cap of each worker in MiB (None: no cap).
        context: the multiprocessing start method, "forkserver" (default) or "spawn".
        preload: modules the workers import before their first task, through the
            forkserver. There is one forkserver per process, and the modules count when
            it starts: the first pool of the process that starts workers decides.
            Empty: the forkserver's list stays as it is.
        loop: an asyncio event loop to drive the workers from (create the pool on that
            loop's thread). None: a dispatcher thread of the pool's own drives them.
        isolation: what the workers close around themselves
            (:class:`~qmk.kernel.pools.sandbox.Isolation`; the default closes the network,
            the filesystem but for a temp dir of each worker's own, and descriptors).
            None: nothing but the memory cap.
        hooks: what the workers do around each task (:class:`WorkerHooks`; a subclass
            may hold, wrap or replace tasks).

    Raises:
        ValueError: a bad option; KeyError: ``isolation.user`` is no user here.
    """

    def __init__(
        self,
        max_workers: int = 2,
        *,
        memory_mb: int | None = None,
        context: str = "forkserver",
        preload: Iterable[str] = (),
        loop: asyncio.AbstractEventLoop | None = None,
        isolation: Isolation | None = Isolation(),  # noqa: B008 - a frozen value
        hooks: WorkerHooks = WorkerHooks(),  # noqa: B008 - the worker keeps its own copy
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        if context not in ("forkserver", "spawn"):
            raise ValueError("context must be 'forkserver' or 'spawn' (fork is unsafe here)")
        self._ctx: ForkServerContext | SpawnContext
        if context == "forkserver":
            self._ctx = multiprocessing.get_context("forkserver")
            modules = list(preload)
            if modules:
                self._ctx.set_forkserver_preload(modules)
        else:
            self._ctx = multiprocessing.get_context("spawn")
        self.max_workers = max_workers
        self.memory_mb = memory_mb
        self.isolation = isolation
        self.hooks = hooks
        self.loop = loop
        #: What the workers said they closed (:meth:`Confinement.to_json`); None until
        #: the first worker has started (or with ``isolation=None``).
        self.confinement: dict[str, Any] | None = None
        self._told: dict[str, Any] | None = None  # the report last logged
        self._lock = threading.Lock()
        self._pending: collections.deque[_Task] = collections.deque()
        self._by_future: dict[Future[Any], _Task] = {}
        self._running: dict[Future[Any], _Worker] = {}
        self._workers: list[_Worker] = []
        self._outcomes: list[_Outcome] = []
        self._notes: list[tuple[Callable[[Any], None], Any]] = []
        #: How each task crosses to its worker.
        self._framing = _Framing()
        self._ids = itertools.count(1)
        self._shutdown = False
        self._stopped = False
        self._watching = loop is not None  # False while a synchronous drain runs
        self._pump_scheduled = False
        #: Loop mode: a message may wait in a worker's line that the loop does not watch
        #: for room yet (a send the socket did not take whole): :meth:`_sync_writers`
        #: looks only then.
        self._backlog = False
        self.spawned = 0
        self._sandboxes = None if isolation is None else Sandboxes(isolation, memory_mb)
        if loop is None:
            self._wake_r: mpc.Connection | None
            self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
            self._wake_pending = False
            self._thread: threading.Thread | None = threading.Thread(
                target=self._thread_main, name="qmk-worker-pool", daemon=True
            )
            self._thread.start()
        else:
            self._wake_r = None
            self._thread = None
            self._loop_thread = threading.get_ident()
            self._pump()  # start the workers now

    # ------------------------------------------------------------------ public

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Queue ``fn(*args, **kwargs)`` for a worker; return its future.

        In loop mode, called on the loop's thread, the task goes to an idle worker's
        socket (or its buffer, never waiting) before ``submit`` returns.
        """
        future: Future[Any] = TaskFuture()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit after shutdown")
            task = _Task(next(self._ids), future, fn, args, kwargs)
            self._pending.append(task)
            self._by_future[future] = task
        if self.loop is not None and threading.get_ident() == self._loop_thread:
            if self._watching and not self._stopped:
                with self._lock:  # dead workers are reaped by their sentinels' callbacks
                    self._assign()
                    short = bool(self._pending) and len(self._workers) < self.max_workers
                if self._outcomes or self._notes:  # e.g. a task that could not be sent
                    self._deliver()
                if self._backlog:
                    self._sync_writers()
                if short:
                    self._schedule_pump()
        else:
            self._wake()
        return future

    def cancel(self, future: Future[Any], reason: str = "cancelled") -> bool:
        """Stop ``future``'s task: drop it if queued, SIGKILL its worker if running.

        A running task's future fails at once with :class:`WorkerKilled` (``reason`` as
        its message); the pool starts a replacement worker. A worker stopped in the
        middle of a reply is killed the same way. Returns False when the task already
        finished.
        """
        with self._lock:
            task = self._by_future.pop(future, None)
            if task is None:
                return False
            worker = self._running.pop(future, None)
            if worker is None:
                with contextlib.suppress(ValueError):
                    self._pending.remove(task)
            else:
                self._kill_locked(worker)
        # out of every table now: complete the future without the lock
        if worker is None:
            if not future.cancel():  # re-queued after a broken pipe: already running
                future.set_exception(WorkerKilled(reason, {"reason": reason}))
            return True
        future.set_exception(WorkerKilled(reason, {"reason": reason}))
        self._wake()
        return True

    def listen(self, future: Future[Any], listener: Callable[[Any], None]) -> None:
        """Have ``listener(payload)`` called with each note ``future``'s task sends
        (on the thread that drives the pool, before the future completes)."""
        with self._lock:
            task = self._by_future.get(future)
            if task is not None:
                task.listener = listener

    def request(self, future: Future[Any], payload: Any) -> bool:
        """Send ``payload`` to ``future``'s running task (it reads it when it looks).

        Returns False when the task is not running (queued, or already finished). The
        request may wait in the pool's buffer until the worker reads: this never blocks.
        """
        with self._lock:
            worker = self._running.get(future)
            task = self._by_future.get(future)
            if worker is None or task is None or worker.killed:
                return False
            try:
                worker.line.send(("request", task.task_id, payload))
            except OSError:
                return False
            waiting = worker.line.waiting
            self._backlog = self._backlog or waiting
        if waiting:
            self._need_flush()
        return True

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the pool. Running tasks are killed when ``cancel_futures`` is true.

        In loop mode, ``wait=True`` with tasks still running blocks the calling thread
        (the loop's, too) until they finish.
        """
        dropped: list[_Task] = []
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                dropped = list(self._pending)
                for task in dropped:
                    self._by_future.pop(task.future, None)
                self._pending.clear()
        for task in dropped:
            if task.sent:  # re-queued after a broken pipe: running, so it cannot cancel
                task.future.set_exception(WorkerKilled("shutdown", {"reason": "shutdown"}))
            else:
                task.future.cancel()
        if cancel_futures:
            for future in list(self._running):
                self.cancel(future, "shutdown")
        if self._thread is not None:
            self._wake()
            if wait:
                self._thread.join()
            return
        loop = self.loop
        assert loop is not None
        if threading.get_ident() == self._loop_thread or not loop.is_running():
            self._finish_on_loop(wait)  # nothing else drives the pool meanwhile
            return
        done = threading.Event()

        def finish() -> None:
            try:
                self._finish_on_loop(wait)
            finally:
                done.set()

        try:
            loop.call_soon_threadsafe(finish)
        except RuntimeError:  # the loop closed meanwhile
            finish()
        if wait:
            done.wait()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        with self._lock:
            return [w.process.pid for w in self._workers if not w.killed]

    def busy(self) -> int:
        """How many tasks are running now."""
        with self._lock:
            return len(self._running)

    # ------------------------------------------------------------------ confinement

    def _heard(self, report: Any) -> None:
        """A worker said what it closed: keep it, and log it when it is news."""
        if not isinstance(report, dict):
            return
        self.confinement = report
        if report == self._told:
            return
        self._told = report
        if "error" in report:
            _log.error("worker not confined, its tasks fail: %s", report["error"])
            return
        _log.info(
            "workers confined: network %s; filesystem %s; user %s; memory %s MiB, "
            "cpu %s s, files %s MiB; temp dir %s; descriptors %s",
            report.get("network"),
            report.get("filesystem"),
            report.get("user"),
            report.get("memory_mb"),
            report.get("cpu_s"),
            report.get("file_mb"),
            report.get("temp_dir"),
            report.get("descriptors"),
        )
        for gap in report.get("gaps", ()):
            _log.warning("worker isolation gap: %s", gap)

    # ------------------------------------------------------------------ common internals

    def _wake(self) -> None:
        """Have the driver look at the queue and the workers again (any thread)."""
        if self._thread is None:
            self._schedule_pump()
            return
        if self._wake_pending:
            return  # a wake-up is already on its way
        self._wake_pending = True
        with contextlib.suppress(OSError):
            self._wake_w.send_bytes(b"")

    def _need_flush(self) -> None:
        """A message waits for a worker: have the driver watch its socket for room."""
        if self.loop is not None and threading.get_ident() == self._loop_thread:
            self._sync_writers()
        else:
            self._wake()

    def _spawn(self) -> _Worker:
        plan = None if self._sandboxes is None else self._sandboxes.plan()
        temp_dir = None if plan is None else plan.temp_dir
        # a pipe each way (a pipe's write and read cost the kernel less than a socket's)
        down, to_worker = self._ctx.Pipe(duplex=False)
        from_worker, up = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=worker_entry,
            args=(
                (down, up),
                plan,
                self.memory_mb,
                self.hooks,
                self._ctx.get_start_method() == "forkserver",
            ),
            name="qmk-worker",
            daemon=True,
        )
        try:
            process.start()
        except BaseException:
            for end in (down, to_worker, from_worker, up):
                end.close()
            if temp_dir is not None:
                shutil.rmtree(temp_dir, ignore_errors=True)
            raise
        down.close()
        up.close()
        self.spawned += 1
        max_frame = None if self.memory_mb is None else self.memory_mb * 1024 * 1024
        line = PoolLine(take_fd(from_worker), max_frame, out_fd=take_fd(to_worker))
        return _Worker(process=process, line=line, temp_dir=temp_dir)

    def _deliver(self) -> None:
        """Hand out notes, then complete the futures settled under the lock (callbacks
        run here, lock free): a task's notes reach its listener before its result."""
        while self._outcomes or self._notes:
            with self._lock:
                outcomes, self._outcomes = self._outcomes, []
                notes, self._notes = self._notes, []
            for listener, payload in notes:
                listener(payload)
            for future, value, error in outcomes:
                if error is None:
                    future.set_result(value)
                else:
                    future.set_exception(error)

    def _refresh_locked(self) -> None:
        """With the lock held: reap dead workers, start missing ones, hand out tasks."""
        self._workers = [w for w in self._workers if not self._reap_if_dead(w)]
        if self._shutdown and not self._pending and not self._running:
            return
        failure = self._top_up()
        if failure is not None:
            for task in self._pending:
                self._by_future.pop(task.future, None)
                # a task re-queued after its worker's line broke is running already:
                # its future cannot be started again, only failed
                if task.sent or task.future.set_running_or_notify_cancel():
                    self._outcomes.append((task.future, None, failure))
            self._pending.clear()
        self._assign()

    def _top_up(self) -> TaskError | None:
        """With the lock held: start workers up to ``max_workers``; the error if one fails."""
        if self._shutdown and not self._pending:
            return None
        while len(self._workers) < self.max_workers:
            try:
                worker = self._spawn()
            except Exception as exc:
                # e.g. a __main__ script without the ``if __name__ == "__main__"`` guard
                return WorkerDied(f"cannot start a worker process: {exc}".strip())
            self._workers.append(worker)
            if self._watching:
                self._watch(worker)
        return None

    def _kill_locked(self, worker: _Worker) -> None:
        worker.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.process.pid, signal.SIGKILL)

    def _reap_if_dead(self, worker: _Worker) -> bool:
        """With the lock held: True (and fail its task) when ``worker`` has exited."""
        if worker.killed:
            if self._watching and worker.process.is_alive():
                return False  # its sentinel's callback reaps it: never block the loop
            self._unwatch(worker)
            worker.process.join()  # killed: it is gone or about to be
            self._forget(worker)
            return True
        if worker.retiring and worker.task is None and worker.process.is_alive():
            if self._watching:  # its sentinel tells when it exits; never block the loop
                if worker.kill_timer is None and self.loop is not None:
                    worker.kill_timer = self.loop.call_later(0.5, self._kill_retired, worker)
                return False
            worker.process.join(timeout=0.5)  # it exits right after its last reply
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        if worker.process.is_alive():
            return False
        self._unwatch(worker)
        worker.process.join()
        task = worker.task
        if task is not None and not worker.closed:
            with contextlib.suppress(Broken):  # what it wrote before it died
                bodies, _ = worker.line.receive(budget=1 << 62)
                for body in bodies:
                    self._settle_locked(worker, body)
                    if worker.task is None:
                        break
            task = worker.task
        self._forget(worker)
        if task is not None:
            self._running.pop(task.future, None)
            self._by_future.pop(task.future, None)
            code = worker.process.exitcode
            error: TaskError
            if code == -signal.SIGXCPU:
                limit = None if self._sandboxes is None else self._sandboxes.cpu_s
                error = WorkerCpuLimit(
                    f"the job used more than the worker CPU-time limit ({limit} s)",
                    {"cpu_s": limit},
                )
            else:
                error = WorkerDied(
                    f"the worker process ended (exit code {code})", {"exitcode": code}
                )
            self._outcomes.append((task.future, None, error))
        return True

    def _forget(self, worker: _Worker) -> None:
        """A reaped worker: close its socket, remove its temp dir (off the loop)."""
        worker.line.close()
        worker.closed = True
        temp_dir, worker.temp_dir = worker.temp_dir, None
        if temp_dir is None:
            return
        loop = self.loop
        if loop is not None and self._watching and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.run_in_executor(None, shutil.rmtree, temp_dir, True)
                return
        shutil.rmtree(temp_dir, ignore_errors=True)

    def _settle_locked(self, worker: _Worker, body: bytes) -> None:
        """With the lock held: act on one message of ``worker``."""
        try:
            message = read_message(body)
        except Exception as exc:
            task = worker.task
            if task is not None and self._running.pop(task.future, None) is not None:
                self._by_future.pop(task.future, None)
                worker.task = None
                failure = TaskError(f"the task's reply is not plain data: {exc}", {})
                self._outcomes.append((task.future, None, failure))
            return
        if (
            not isinstance(message, tuple)
            or len(message) != 3
            or not isinstance(message[0], int)
            or not isinstance(message[1], str)
        ):
            self._break_locked(worker, "a message that is not (task id, kind, value)")
            return
        task_id, kind, value = message
        task = worker.task
        if kind == "hello":
            self._heard(value)
            return
        if kind == "retire":
            worker.retiring = True
            return
        if kind == "note":  # the task goes on: hand its note to the listener
            listener = None if task is None or task.task_id != task_id else task.listener
            if listener is not None and task is not None and task.future in self._running:
                self._notes.append((listener, value))
            return
        if task is None or task.task_id != task_id:
            return
        worker.task = None
        if kind == "memory":
            worker.retiring = True
        if self._running.pop(task.future, None) is None:
            return  # cancelled meanwhile
        self._by_future.pop(task.future, None)
        if kind == "ok":
            self._outcomes.append((task.future, value, None))
        elif kind == "memory":
            error: TaskError = WorkerMemoryError(str(value), {"memory_mb": self.memory_mb})
            self._outcomes.append((task.future, None, error))
        elif kind == "error" and isinstance(value, tuple) and len(value) == 2:
            message_text, data = value
            self._outcomes.append(
                (task.future, None, TaskError(str(message_text), dict(data or {})))
            )
        else:
            self._outcomes.append(
                (task.future, None, WorkerDied(f"the worker sent a reply of kind {kind!r}"))
            )

    def _break_locked(self, worker: _Worker, why: str) -> None:
        """With the lock held: ``worker`` broke the protocol: kill it, fail its task."""
        self._kill_locked(worker)
        task, worker.task = worker.task, None
        if task is not None and self._running.pop(task.future, None) is not None:
            self._by_future.pop(task.future, None)
            error = WorkerDied(f"the worker broke the pool's protocol: {why}", {"reason": why})
            self._outcomes.append((task.future, None, error))

    def _assign(self) -> None:
        for worker in self._workers:
            if not self._pending:
                return
            if worker.task is not None or worker.killed or worker.retiring or worker.closed:
                continue
            self._assign_to(worker)

    def _assign_to(self, worker: _Worker) -> None:
        """With the lock held: send the next runnable queued task to idle ``worker``."""
        while self._pending:
            task = self._pending.popleft()
            # running already: sent before, to a worker whose line broke (a flag of the
            # task's own, not the future's two locked looks, for every task)
            if not task.sent:
                if not task.future.set_running_or_notify_cancel():
                    self._by_future.pop(task.future, None)
                    continue
                task.sent = True
            try:
                if not self._framing.send(worker.line, task):
                    self._backlog = True
            except OSError:
                worker.retiring = True  # the worker is gone; the task waits for another
                self._pending.appendleft(task)
                return
            except Exception as exc:
                self._by_future.pop(task.future, None)
                self._outcomes.append(
                    (task.future, None, TaskError(f"cannot send the task: {exc}"))
                )
                continue
            worker.task = task
            self._running[task.future] = worker
            return

    def _flush_locked(self, worker: _Worker) -> bool:
        """With the lock held: write what waits for ``worker``; True when all went."""
        try:
            return worker.line.flush()
        except OSError:  # its end is gone: its sentinel tells the rest
            worker.line.close()
            worker.closed = True
            return True

    def _stop_workers(self) -> None:
        """Ask every worker to exit, kill the ones that do not, close the sockets."""
        with self._lock:
            workers, self._workers = self._workers, []
            self._stopped = True
        for worker in workers:
            self._unwatch(worker)
            with contextlib.suppress(OSError, ValueError):
                worker.line.send(None)
        deadline = time.monotonic() + 1.0
        for worker in workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.line.close()
            if worker.temp_dir is not None:
                shutil.rmtree(worker.temp_dir, ignore_errors=True)
        if self._sandboxes is not None:
            self._sandboxes.close()

    # ------------------------------------------------------------------ thread mode

    def _thread_main(self) -> None:
        try:
            self._drive_blocking()
        finally:
            self._stop_workers()

    def _drive_blocking(self) -> None:
        """Wait on the sockets and sentinels in this thread until shut down and idle."""
        while True:
            poller = select.poll()
            lines: dict[int, _Worker] = {}
            with self._lock:
                self._refresh_locked()
                done = self._shutdown and not self._pending and not self._running
                if self._wake_r is not None:
                    poller.register(self._wake_r.fileno(), select.POLLIN)
                for worker in self._workers:
                    if not worker.closed:
                        poller.register(worker.line.fd, select.POLLIN)
                        lines[worker.line.fd] = worker
                        if worker.line.waiting:
                            poller.register(worker.line.out_fd, select.POLLOUT)
                            lines[worker.line.out_fd] = worker
                    poller.register(worker.process.sentinel, select.POLLIN)
            self._deliver()
            if done:
                return
            for fd, _events in poller.poll():
                if self._wake_r is not None and fd == self._wake_r.fileno():
                    with contextlib.suppress(EOFError, OSError):
                        while self._wake_r.poll():
                            self._wake_r.recv_bytes()
                    # after draining, before the next look at the queue: a wake that saw
                    # the flag still set made its change before this and is seen then
                    self._wake_pending = False
                    continue
                worker_of = lines.get(fd)
                if worker_of is None:
                    continue  # a sentinel: the next refresh reaps its worker
                if fd == worker_of.line.out_fd:  # room, or its reader gone (the flush says)
                    with self._lock:
                        self._flush_locked(worker_of)
                else:
                    self._receive(worker_of)
            self._deliver()

    def _receive(self, worker: _Worker) -> None:
        """Take what ``worker`` sent (never waits for the rest of a message)."""
        if worker.closed:
            return
        try:
            bodies, eof = worker.line.receive()
        except Broken as exc:
            with self._lock:
                self._break_locked(worker, str(exc))
            worker.closed = True
            return
        with self._lock:
            for body in bodies:
                self._settle_locked(worker, body)
        if eof:
            worker.closed = True  # its sentinel tells the rest

    # ------------------------------------------------------------------ loop mode

    def _watch(self, worker: _Worker) -> None:
        assert self.loop is not None
        fds = (worker.line.fd, worker.process.sentinel)
        self.loop.add_reader(fds[0], self._on_reply, worker)
        self.loop.add_reader(fds[1], self._on_exit, worker)
        worker.fds = fds

    def _unwatch(self, worker: _Worker) -> None:
        if worker.kill_timer is not None:
            worker.kill_timer.cancel()
            worker.kill_timer = None
        if worker.fds is None or self.loop is None or self.loop.is_closed():
            worker.fds = None
            worker.writing = False
            return
        for fd in worker.fds:
            self.loop.remove_reader(fd)
        if worker.writing:
            self.loop.remove_writer(worker.line.out_fd)
            worker.writing = False
        worker.fds = None

    def _sync_writers(self) -> None:
        """On the loop: watch for room in the socket of every worker a message waits for."""
        if self.loop is None or not self._watching or not self._backlog:
            return
        with self._lock:
            self._backlog = False
            for worker in self._workers:
                if worker.line.waiting and not worker.writing:
                    if worker.fds is None:  # not watched (yet): looked at again next time
                        self._backlog = True
                        continue
                    self.loop.add_writer(worker.line.out_fd, self._on_writable, worker)
                    worker.writing = True

    def _on_writable(self, worker: _Worker) -> None:
        """The loop saw room in ``worker``'s socket: write what waits for it."""
        with self._lock:
            done = self._flush_locked(worker)
        if done and worker.writing and self.loop is not None and worker.fds is not None:
            self.loop.remove_writer(worker.line.out_fd)
            worker.writing = False

    def _schedule_pump(self) -> None:
        """Run :meth:`_pump` on the loop soon (from any thread; once per turn)."""
        if self._pump_scheduled or self._stopped:
            return
        self._pump_scheduled = True
        assert self.loop is not None
        try:
            if threading.get_ident() == self._loop_thread:
                self.loop.call_soon(self._pump)
            else:
                self.loop.call_soon_threadsafe(self._pump)
        except RuntimeError:  # the loop is closed: nothing drives the pool any more
            self._pump_scheduled = False

    def _pump(self) -> None:
        """On the loop: reap, top up, hand out tasks; stop the workers once shut down."""
        self._pump_scheduled = False
        if self._stopped or not self._watching:
            return
        with self._lock:
            self._refresh_locked()
            done = self._shutdown and not self._pending and not self._running
        self._deliver()
        if done:
            self._stop_workers()
            return
        self._sync_writers()

    def _on_reply(self, worker: _Worker) -> None:
        """The loop saw ``worker``'s socket readable: take what came (a whole reply or a
        piece of one), and give the worker its next task once its reply is in."""
        self._receive(worker)
        if worker.closed and worker.fds is not None and self.loop is not None:
            # its end is closed (or it broke the protocol): stop watching its socket;
            # its sentinel tells the rest
            self.loop.remove_reader(worker.fds[0])
            if worker.writing:
                self.loop.remove_writer(worker.line.out_fd)
                worker.writing = False
        with self._lock:
            if (
                worker.task is None
                and self._pending
                and not (worker.killed or worker.retiring or worker.closed)
            ):
                self._assign_to(worker)
            retire = worker.retiring
        self._deliver()
        if self._backlog:
            self._sync_writers()
        if retire or (self._shutdown and not self._running):
            self._schedule_pump()

    def _on_exit(self, worker: _Worker) -> None:
        """The loop saw ``worker``'s sentinel: it exited (or was killed)."""
        if worker.fds is not None and self.loop is not None:
            self.loop.remove_reader(worker.fds[1])
        self._pump()

    def _kill_retired(self, worker: _Worker) -> None:
        worker.kill_timer = None
        with contextlib.suppress(ProcessLookupError, AttributeError):
            worker.process.kill()

    def _finish_on_loop(self, wait: bool) -> None:
        """Shutdown's end in loop mode (on the loop's thread, or with the loop closed)."""
        if self._stopped:
            return
        with self._lock:
            idle = not self._pending and not self._running
        if not wait and not idle:
            self._schedule_pump()  # the last reply stops the workers
            return
        if not idle:
            with self._lock:
                self._watching = False
                for worker in self._workers:
                    self._unwatch(worker)
            self._drive_blocking()
        self._stop_workers()


__all__ = [
    "TaskError",
    "WorkerCpuLimit",
    "WorkerDied",
    "WorkerHooks",
    "WorkerKilled",
    "WorkerLost",
    "WorkerMemoryError",
    "WorkerPool",
    "worker_entry",
]
