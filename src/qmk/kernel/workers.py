"""A process pool for jobs: persistent workers fed over pipes, with a memory cap and real kill.

:class:`WorkerPool` is a :class:`concurrent.futures.Executor`: ``submit(fn, *args)``
returns a :class:`~concurrent.futures.Future`, ``shutdown()`` stops the workers. Its one
extension is :meth:`WorkerPool.cancel`, which also stops a task that is already running:
it SIGKILLs the task's worker, fails the future with :class:`WorkerKilled` at once, and a
fresh worker takes the dead one's place. Anything that offers ``submit``, ``shutdown`` and
``cancel(future, reason)`` (a Dask ``distributed.Client`` wrapper, for instance) can take
this pool's place in the kernel.

Two ways to drive the workers, one state machine:

- **thread mode** (``loop=None``, the default): a dispatcher thread of the pool waits on
  the workers' pipes and exit sentinels; ``submit`` from any thread wakes it through a
  pipe. Good for synchronous callers.
- **loop mode** (``loop=`` an asyncio loop, the pool created on that loop's thread): no
  thread at all. The loop watches each worker's pipe and sentinel (``add_reader``);
  ``submit`` on the loop's thread writes the task straight into an idle worker's pipe,
  and a worker's reply is read, its future completed and the worker handed its next
  queued task in one reader callback. The kernel uses this mode: a thread beside the
  loop made every job pay for GIL hand-offs and wake-up writes. Calls from other
  threads still work (they hop onto the loop with ``call_soon_threadsafe``).

Futures complete outside the pool's lock, so a done-callback may call the pool again.

Workers start from a ``forkserver`` (the default context) that has already imported the
modules in ``preload`` (the executor), so a new worker is ready in about 10 ms and a task
costs one pipe round trip. Each worker caps its own address space with
``setrlimit(RLIMIT_AS)``; a task that runs out of memory fails with
:class:`WorkerMemoryError` and its worker exits, to be replaced.

Functions and arguments travel by pickle, so ``fn`` must be importable (a module-level
function). Errors raised by ``fn`` come back as :class:`TaskError` carrying the exception
type and message (and ``to_json()`` of a :class:`~qmk.errors.QMKError`).

**Talking to a running task.** A task's function may send the pool notes while it
runs (:func:`current_link`, :meth:`TaskLink.notify`); the pool hands each to the
listener :meth:`WorkerPool.listen` set on the task's future, before the task's result.
The pool may send a running task requests (:meth:`WorkerPool.request`): they wait in the
pipe until the task looks (:meth:`TaskLink.pending`, :meth:`TaskLink.requests`). No
signal announces them: a signal could reach a fresh worker before it installs its
handler and kill it. The kernel's checkpoints and preemptions at fences travel this way.

A test hook, the **gate**: a pool made with ``gate=`` the path of a FIFO holds every task
in its worker, before it runs, until the FIFO yields one byte for it (one byte lets one
task through). The test that holds the FIFO's write end opens the gate for good by
removing the FIFO and then closing its end: a waiting worker sees the end of file, a new
one finds no FIFO. A test thus decides exactly how many tasks run and when, whatever the
machine's speed; ``Kernel.open`` reads the path from :data:`GATE_ENV`, so a test can hold
the jobs of a ``qmk serve`` process too. Nothing else uses it. Its twin, the **pause
gate** (``pause_gate=``, :data:`PAUSE_GATE_ENV`), holds a running task at each point
where it calls :meth:`TaskLink.pause` (the executor's fences) until a byte comes or a
request arrives: a test can hold a job at a fence, take a checkpoint there, preempt it
or kill the kernel, whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import multiprocessing
import multiprocessing.connection as mpc
import os
import select
import signal
import stat
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext, SpawnContext

#: Modules a worker imports before its first task.
DEFAULT_PRELOAD: tuple[str, ...] = (
    "qmk.execution.executor",
    "qmk.kernel.jobs",
    "qmk.execution.batch",
    "qmk.engines.stim_batch",
    "qmk.execution.trajectories",
    "qmk.engines.stabilizer",
    "qmk.engines.statevector",
    "qmk.qec.logical",
    "stim",
)

#: The environment variable whose value, a FIFO's path, ``Kernel.open`` passes as the
#: default pool's ``gate`` (a test hook: see the module docstring).
GATE_ENV = "QMK_TEST_WORKER_GATE"
#: The same for the pool's ``pause_gate`` (a FIFO that holds running tasks at fences).
PAUSE_GATE_ENV = "QMK_TEST_PAUSE_GATE"


class TaskLink:
    """The running task's line to its pool, in a worker process (see the module docstring)."""

    def __init__(
        self,
        conn: mpc.Connection,
        task_id: int,
        pause_gate: int | None,
        held: list[Any] | None = None,
    ) -> None:
        self._conn = conn
        self._task_id = task_id
        self._pause_gate = pause_gate
        self._held = [m[2] for m in held or () if m[:2] == ("request", task_id)]

    def notify(self, payload: Any) -> None:
        """Send ``payload`` to the pool (the listener of the task's future gets it)."""
        self._conn.send((self._task_id, "note", payload))

    def pending(self) -> bool:
        """Whether a request (or anything) waits in the pipe (no wait, one system call)."""
        return bool(self._held) or self._conn.poll()

    def requests(self) -> list[Any]:
        """The requests the pool sent this task so far (each once), oldest first."""
        out, self._held = self._held, []
        while self._conn.poll():
            message = self._conn.recv()
            if isinstance(message, tuple) and message[:2] == ("request", self._task_id):
                out.append(message[2])
        return out

    @property
    def paused(self) -> bool:
        """Whether a pause gate holds this task at its pauses."""
        return self._pause_gate is not None

    def pause(self) -> tuple[bytes, list[Any]]:
        """The test hook: with a pause gate, wait until it yields a byte or a request
        comes (a byte waiting goes first); ``(the byte, the requests)``, one of them
        empty. ``b""`` and no requests: no gate, or its end of file (open for good)."""
        gate = self._pause_gate
        if gate is None:
            return b"", []
        pipe = self._conn.fileno()
        while True:
            ready, _, _ = select.select([gate, pipe], [], [])
            if gate in ready:
                try:
                    byte = os.read(gate, 1)
                except BlockingIOError:
                    continue  # another worker took the byte
                if not byte:
                    self._pause_gate = None  # end of file: the gate is open for good
                return byte, []
            requests = self.requests()
            if requests:
                return b"", requests


_LINK: TaskLink | None = None


def current_link() -> TaskLink | None:
    """The running task's :class:`TaskLink` (None outside a pool's worker)."""
    return _LINK


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


def _open_gate(gate: str | None) -> int | None:
    """The gate FIFO's read end (non-blocking); None when there is no gate (any more)."""
    if gate is None:
        return None
    try:
        return os.open(gate, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None  # removed: the gate was opened for good


def _pass_gate(gate: int, conn: mpc.Connection, held: list[Any]) -> bool:
    """Wait at the gate FIFO ``gate`` for a byte, or for its end of file (its writer is
    gone: open for good). Requests for the held task that come meanwhile go to ``held``.
    False when the pool went away meanwhile."""
    pipe = conn.fileno()
    while True:
        ready, _, _ = select.select([gate, pipe], [], [])
        if pipe in ready:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return False  # the pool closed our pipe: it is gone
            if message is None:
                return False  # the pool is shutting us down
            if message[0] == "request":
                held.append(message)
            continue
        try:
            os.read(gate, 1)  # one byte lets this task through; b"" (end of file) all of them
        except BlockingIOError:
            continue  # another worker took the byte
        return True


def _worker_main(
    conn: mpc.Connection,
    memory_mb: int | None,
    gate: str | None = None,
    pause_gate: str | None = None,
) -> None:
    """A worker: run tasks from ``conn`` until it closes or sends None."""
    global _LINK
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_memory(memory_mb)
    gate_fd = _open_gate(gate)
    pause_fd = _open_gate(pause_gate)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        if message[0] == "request":
            continue  # for a task that has ended
        task_id, fn, args, kwargs = message
        held: list[Any] = []
        if gate_fd is not None and not _pass_gate(gate_fd, conn, held):
            return
        _LINK = TaskLink(conn, task_id, pause_fd, held)
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
        finally:
            if _LINK is not None:
                pause_fd = _LINK._pause_gate  # None once the gate opened for good
            _LINK = None
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
    listener: Callable[[Any], None] | None = None


@dataclass(slots=True, eq=False)
class _Worker:
    process: Any
    conn: mpc.Connection
    task: _Task | None = None
    killed: bool = False
    retiring: bool = False  # exits after its current reply (memory cap hit, broken pipe)
    fds: tuple[int, int] | None = None  # (pipe, sentinel) watched by the event loop
    kill_timer: Any = None  # loop mode: kills a retiring worker that does not exit
    extra: dict[str, Any] = field(default_factory=dict)


#: A completion to deliver once the pool's lock is released: (future, value, exception).
_Outcome = tuple[Future[Any], Any, BaseException | None]


class WorkerPool(Executor):
    """Runs tasks in ``max_workers`` persistent worker processes.

    Args:
        max_workers: how many worker processes.
        memory_mb: address-space cap of each worker in MiB (None: no cap).
        context: the multiprocessing start method, "forkserver" (default) or "spawn".
        preload: modules each worker imports before its first task.
        loop: an asyncio event loop to drive the workers from (create the pool on that
            loop's thread). None: a dispatcher thread of the pool's own drives them.
        gate: a test hook, the path of a FIFO that holds each task in its worker until a
            byte comes (see the module docstring). None: tasks run at once.
        pause_gate: a test hook, the path of a FIFO that holds a running task wherever
            it calls :meth:`TaskLink.pause` (see the module docstring).
    """

    def __init__(
        self,
        max_workers: int = 2,
        *,
        memory_mb: int | None = None,
        context: str = "forkserver",
        preload: Iterable[str] = DEFAULT_PRELOAD,
        loop: asyncio.AbstractEventLoop | None = None,
        gate: str | os.PathLike[str] | None = None,
        pause_gate: str | os.PathLike[str] | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        for fifo in (gate, pause_gate):
            if fifo is not None and not stat.S_ISFIFO(os.stat(fifo).st_mode):
                raise ValueError(f"the gate {os.fspath(fifo)!r} is not a FIFO")
        if context not in ("forkserver", "spawn"):
            raise ValueError("context must be 'forkserver' or 'spawn' (fork is unsafe here)")
        self._ctx: ForkServerContext | SpawnContext
        if context == "forkserver":
            self._ctx = multiprocessing.get_context("forkserver")
            self._ctx.set_forkserver_preload(list(preload))
        else:
            self._ctx = multiprocessing.get_context("spawn")
        self.max_workers = max_workers
        self.memory_mb = memory_mb
        self.gate = None if gate is None else os.fspath(gate)
        self.pause_gate = None if pause_gate is None else os.fspath(pause_gate)
        self.loop = loop
        self._lock = threading.Lock()
        self._pending: collections.deque[_Task] = collections.deque()
        self._by_future: dict[Future[Any], _Task] = {}
        self._running: dict[Future[Any], _Worker] = {}
        self._workers: list[_Worker] = []
        self._outcomes: list[_Outcome] = []
        self._notes: list[tuple[Callable[[Any], None], Any]] = []
        self._ids = itertools.count(1)
        self._shutdown = False
        self._stopped = False
        self._watching = loop is not None  # False while a synchronous drain runs
        self._pump_scheduled = False
        self.spawned = 0
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

        In loop mode, called on the loop's thread, the task goes to an idle worker's pipe
        before ``submit`` returns.
        """
        future: Future[Any] = Future()
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
                self._deliver()
                if short:
                    self._schedule_pump()
        else:
            self._wake()
        return future

    def cancel(self, future: Future[Any], reason: str = "cancelled") -> bool:
        """Stop ``future``'s task: drop it if queued, SIGKILL its worker if running.

        A running task's future fails at once with :class:`WorkerKilled` (``reason`` as
        its message); the pool starts a replacement worker. Returns False when the task
        already finished.
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
                worker.killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.process.pid, signal.SIGKILL)
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

        Returns False when the task is not running (queued, or already finished).
        """
        with self._lock:
            worker = self._running.get(future)
            task = self._by_future.get(future)
            if worker is None or task is None or worker.killed:
                return False
            try:
                worker.conn.send(("request", task.task_id, payload))
            except OSError:
                return False
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

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_worker_main,
            args=(child, self.memory_mb, self.gate, self.pause_gate),
            name="qmk-worker",
            daemon=True,
        )
        process.start()
        child.close()
        self.spawned += 1
        return _Worker(process=process, conn=parent)

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
                if task.future.set_running_or_notify_cancel():
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

    def _reap_if_dead(self, worker: _Worker) -> bool:
        """With the lock held: True (and fail its task) when ``worker`` has exited."""
        if worker.killed:
            if self._watching and worker.process.is_alive():
                return False  # its sentinel's callback reaps it: never block the loop
            self._unwatch(worker)
            worker.process.join()
            worker.conn.close()
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
        with contextlib.suppress(OSError, EOFError):
            while task is not None and worker.conn.poll():
                self._settle_locked(worker, worker.conn.recv())
                task = worker.task
        worker.conn.close()
        if task is not None:
            self._running.pop(task.future, None)
            self._by_future.pop(task.future, None)
            code = worker.process.exitcode
            error = WorkerDied(f"the worker process ended (exit code {code})", {"exitcode": code})
            self._outcomes.append((task.future, None, error))
        return True

    def _settle_locked(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        task_id, kind, value = message
        task = worker.task
        if kind == "note":  # the task goes on: hand its note to the listener
            listener = None if task is None or task.task_id != task_id else task.listener
            if listener is not None and task is not None and task.future in self._running:
                self._notes.append((listener, value))
            return
        worker.task = None
        if kind == "memory":
            worker.retiring = True
        if task is None or task.task_id != task_id:
            return
        if self._running.pop(task.future, None) is None:
            return  # cancelled meanwhile
        self._by_future.pop(task.future, None)
        if kind == "ok":
            self._outcomes.append((task.future, value, None))
        elif kind == "memory":
            error: TaskError = WorkerMemoryError(value, {"memory_mb": self.memory_mb})
            self._outcomes.append((task.future, None, error))
        else:
            message_text, data = value
            self._outcomes.append((task.future, None, TaskError(message_text, data)))

    def _assign(self) -> None:
        for worker in self._workers:
            if not self._pending:
                return
            if worker.task is not None or worker.killed or worker.retiring:
                continue
            self._assign_to(worker)

    def _assign_to(self, worker: _Worker) -> None:
        """With the lock held: send the next runnable queued task to idle ``worker``."""
        while self._pending:
            task = self._pending.popleft()
            if not task.future.running() and not task.future.set_running_or_notify_cancel():
                self._by_future.pop(task.future, None)
                continue
            try:
                worker.conn.send((task.task_id, task.fn, task.args, task.kwargs))
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

    def _stop_workers(self) -> None:
        """Ask every worker to exit, kill the ones that do not, close the pipes."""
        with self._lock:
            workers, self._workers = self._workers, []
            self._stopped = True
        for worker in workers:
            self._unwatch(worker)
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)
        for worker in workers:
            worker.process.join(timeout=1.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()

    # ------------------------------------------------------------------ thread mode

    def _thread_main(self) -> None:
        try:
            self._drive_blocking()
        finally:
            self._stop_workers()

    def _drive_blocking(self) -> None:
        """Wait on the pipes and sentinels in this thread until shut down and idle."""
        while True:
            with self._lock:
                self._refresh_locked()
                done = self._shutdown and not self._pending and not self._running
                watch: list[Any] = [] if self._wake_r is None else [self._wake_r]
                for worker in self._workers:
                    watch.append(worker.conn)
                    watch.append(worker.process.sentinel)
            self._deliver()
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
            self._deliver()

    def _receive(self, worker: _Worker) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            return  # the sentinel tells the rest next round
        with self._lock:
            self._settle_locked(worker, message)

    # ------------------------------------------------------------------ loop mode

    def _watch(self, worker: _Worker) -> None:
        assert self.loop is not None
        fds = (worker.conn.fileno(), worker.process.sentinel)
        self.loop.add_reader(fds[0], self._on_reply, worker)
        self.loop.add_reader(fds[1], self._on_exit, worker)
        worker.fds = fds

    def _unwatch(self, worker: _Worker) -> None:
        if worker.kill_timer is not None:
            worker.kill_timer.cancel()
            worker.kill_timer = None
        if worker.fds is None or self.loop is None or self.loop.is_closed():
            worker.fds = None
            return
        for fd in worker.fds:
            self.loop.remove_reader(fd)
        worker.fds = None

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

    def _on_reply(self, worker: _Worker) -> None:
        """The loop saw ``worker``'s pipe readable: take its reply, give it the next task."""
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            # the worker is gone: stop watching its pipe; its sentinel tells the rest
            if worker.fds is not None and self.loop is not None:
                self.loop.remove_reader(worker.fds[0])
            return
        with self._lock:
            self._settle_locked(worker, message)
            if worker.task is None and not (worker.killed or worker.retiring):
                self._assign_to(worker)
            retire = worker.retiring
        self._deliver()
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
    "DEFAULT_PRELOAD",
    "GATE_ENV",
    "PAUSE_GATE_ENV",
    "TaskError",
    "TaskLink",
    "WorkerDied",
    "WorkerKilled",
    "WorkerMemoryError",
    "WorkerPool",
    "current_link",
]
