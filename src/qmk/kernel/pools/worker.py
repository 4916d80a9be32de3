"""The worker's side of a pool (:mod:`qmk.kernel.pools.pool`): what a worker process runs.

A worker confines itself (:mod:`qmk.kernel.pools.confine`), says what holds, and runs
the tasks its pool sends until the pool closes its line or sends None
(:func:`worker_main`). A running task talks to its pool through its :class:`TaskLink`
(:func:`current_link`). A worker whose pool dies without a word ends at once: a thread
waits for its socket to close (:func:`exit_when_closed`, for any job process fed over
a socket).

Only worker processes import this module (the pool starts each worker at
:func:`qmk.kernel.pools.pool.worker_entry`, which imports it there): the process that
holds the pool runs none of it.
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection as mpc
import os
import pickle
import select
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qmk.kernel.pools.wire import take_fd
from qmk.kernel.pools.worker_line import WorkerLine

if TYPE_CHECKING:
    from qmk.kernel.pools.confine import CpuBudget
    from qmk.kernel.pools.pool import WorkerHooks
    from qmk.kernel.pools.sandbox import Plan


class PoolClosed(EOFError):
    """In a worker: the pool closed the worker's line or asked it to stop. The worker
    ends without a reply (raise it from :meth:`~qmk.kernel.pools.pool.WorkerHooks.run`
    to end it so)."""


class TaskLink:
    """The running task's line to its pool, in a worker process (see the module docstring).

    Args:
        line: the worker's end of its socket.
        task_id: the task's number in the pool's protocol.
    """

    def __init__(self, line: WorkerLine, task_id: int) -> None:
        self._line = line
        self._task_id = task_id
        self._held: list[Any] = []

    def notify(self, payload: Any) -> None:
        """Send ``payload`` to the pool (the listener of the task's future gets it)."""
        self._line.send((self._task_id, "note", payload))

    def pending(self) -> bool:
        """Whether a request (or anything) waits in the socket (no wait, one system call)."""
        return bool(self._held) or self._line.poll()

    def requests(self) -> list[Any]:
        """The requests the pool sent this task so far (each once), oldest first.

        Raises:
            PoolClosed: the pool closed the line or asked the worker to stop.
        """
        self._read()
        out, self._held = self._held, []
        return out

    def wait(self, fd: int) -> bool:
        """Wait until the descriptor ``fd`` (one of the task's own) is readable, or the
        pool sends this task requests: True for ``fd``, False when requests wait
        (:meth:`requests` takes them). When both are ready ``fd`` goes first.

        Raises:
            PoolClosed: the pool closed the line or asked the worker to stop.
        """
        pipe = self._line.fileno()
        while True:
            if self._line.buffered():  # a message came in with an earlier read
                ready: list[int] = [*select.select([fd], [], [], 0)[0], pipe]
            else:
                ready, _, _ = select.select([fd, pipe], [], [])
            if fd in ready:
                return True
            self._read()
            if self._held:
                return False

    def ask(self, payload: Any) -> Any:
        """Send ``payload`` to the pool as a note and wait for its answer: the next
        request the pool sends this task (the oldest, if some wait already).

        Raises:
            PoolClosed: the pool closed the line or asked the worker to stop.
        """
        self.notify(payload)
        while not self._held:
            self._take()
        return self._held.pop(0)

    def _read(self) -> None:
        """Take every message the socket holds; keep this task's requests."""
        while self._line.poll():
            self._take()

    def _take(self) -> None:
        """Take the next message (wait for it); keep it if it is this task's request."""
        try:
            message = self._line.recv()
        except EOFError:
            raise PoolClosed("the pool closed the worker's line") from None
        if message is None:
            raise PoolClosed("the pool asked the worker to stop")
        if isinstance(message, tuple) and message[:2] == ("request", self._task_id):
            self._held.append(message[2])


_LINK: TaskLink | None = None


def current_link() -> TaskLink | None:
    """The running task's :class:`TaskLink` (None outside a pool's worker)."""
    return _LINK


#: What says that the other end of a socket is gone: it closed (``POLLHUP``), it shut
#: its sending side (``POLLRDHUP``, Linux), or the socket broke (``POLLERR``).
_GONE = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)
#: The stack of the watcher thread: it only waits in poll(), and a worker under a tight
#: ``RLIMIT_AS`` should not give 8 MiB of its address space to it.
_WATCHER_STACK = 256 * 1024


def exit_when_closed(fd: int, *, status: int = 0) -> threading.Thread:
    """End this process (``os._exit(status)``) as soon as the other end of the socket
    ``fd`` is gone: a daemon thread waits in ``poll()`` for ``POLLHUP``/``POLLRDHUP``.

    For a job process fed over a socket by a process that may die without a word
    (``kill -9``): without it the job computes on until its next write. The thread only
    waits; it reads nothing, so the socket's data stay for the process's own reads. Call
    it after the process confined itself (:func:`qmk.kernel.pools.confine.confine`): the
    thread then inherits the Landlock domain and the seccomp filter (poll, exit_group
    and the thread's clone are not denied by them). A process that closes ``fd`` itself
    ends too (``POLLNVAL``): call it on a descriptor kept to the end.

    Returns:
        The started thread (a daemon: it never keeps the process alive).

    Raises:
        RuntimeError: the thread cannot start (no memory for its stack).
    """

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, _GONE)
        while True:
            for _, events in poller.poll():
                if events & (_GONE | select.POLLNVAL):
                    os._exit(status)

    previous = threading.stack_size(_WATCHER_STACK)
    try:
        thread = threading.Thread(target=watch, name="qmk-exit-when-closed", daemon=True)
        thread.start()
    finally:
        threading.stack_size(previous)
    return thread


def _confine(
    plan: Plan | None, memory_mb: int | None, keep: list[int]
) -> tuple[dict[str, Any] | None, CpuBudget | None, str | None]:
    """Confine this worker: ``(its report, its CPU budget, why it refuses tasks)``."""
    try:
        from qmk.kernel.pools.confine import confine  # the worker's side, not the pool's

        if plan is None:
            if memory_mb is not None:
                import resource

                cap = memory_mb * 1024 * 1024
                resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            return None, None, None
        confinement, budget = confine(plan, keep)
        return confinement.to_json(), budget, None
    except Exception as exc:  # fail closed: never run a task unconfined
        refusal = f"the worker could not confine itself: {type(exc).__name__}: {exc}"
        return {"error": refusal}, None, refusal


#: The worker's functions, by the pickle the pool sends for each (:func:`_function_of`).
_FUNCTIONS: dict[bytes, Callable[..., Any]] = {}


def _function_of(fn: Any) -> Callable[..., Any]:
    """A task's function as the pool sent it: a plain function's pickle (the pool's
    :meth:`_Framing.pickled`), read once per worker, or the callable itself."""
    if type(fn) is not bytes:
        return fn
    function = _FUNCTIONS.get(fn)
    if function is None:
        function = _FUNCTIONS[fn] = pickle.loads(fn)
    return function


def _run_task(
    hooks: WorkerHooks, link: TaskLink, message: Any, memory_mb: int | None, refusal: str | None
) -> tuple[Any, ...]:
    """Run the task of ``message`` through ``hooks`` (or refuse it): its reply.

    Raises:
        PoolClosed: the pool is gone or asked the worker to stop: no reply.
    """
    task_id, fn, args, kwargs = message
    try:
        if refusal is not None:
            raise RuntimeError(refusal)
        fn = _function_of(fn)
        return (task_id, "ok", hooks.run(link, fn, args, kwargs))
    except PoolClosed:
        raise
    except MemoryError:
        return (task_id, "memory", f"the job exceeded the worker memory cap ({memory_mb} MiB)")
    except BaseException as exc:
        data: dict[str, Any] = {"type": f"{type(exc).__module__}.{type(exc).__qualname__}"}
        to_json = getattr(exc, "to_json", None)
        if callable(to_json):
            with contextlib.suppress(Exception):
                data["error"] = to_json()
        return (task_id, "error", (str(exc) or type(exc).__name__, data))


def worker_main(
    ends: tuple[mpc.Connection, mpc.Connection],
    plan: Plan | None,
    memory_mb: int | None,
    hooks: WorkerHooks,
    from_forkserver: bool = False,
) -> None:
    """A worker: confine itself, say so, run tasks until the pool closes or sends None.

    It ends when its pool's process dies: its socket closes (:func:`exit_when_closed`),
    and, when it was forked by the forkserver (which ends with the pool's process), its
    parent ends (:func:`~qmk.kernel.pools.confine.die_with_parent`, which needs no GIL).
    """
    global _LINK
    parent = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    line = WorkerLine(take_fd(ends[0]), take_fd(ends[1]))
    refusal: str | None = None
    try:
        kept = [int(fd) for fd in hooks.start()]
    except Exception as exc:
        kept = []
        refusal = f"the worker's hooks could not start: {type(exc).__name__}: {exc}"
    report, budget, confined = _confine(plan, memory_mb, [line.fd, line.out_fd, *kept])
    refusal = refusal or confined
    try:  # after confine, so the thread is as confined as the worker
        exit_when_closed(line.fd)
    except RuntimeError as exc:
        if report is not None and isinstance(report.get("gaps"), list):
            report["gaps"].append(f"orphans: a worker outlives a dead pool ({exc})")
    if from_forkserver:  # a spawned worker's parent is a thread of the pool's process
        from qmk.kernel.pools.confine import die_with_parent  # imported by _confine

        die_with_parent(parent)
    line.send((0, "hello", report))
    while True:
        try:
            message = line.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        if message[0] == "request":
            continue  # for a task that has ended
        task_id = message[0]
        _LINK = TaskLink(line, task_id)
        try:
            if budget is not None and refusal is None:
                budget.start_task()
            reply = _run_task(hooks, _LINK, message, memory_mb, refusal)
        except PoolClosed:
            return
        finally:
            _LINK = None
        retire = reply[1] == "memory" or (budget is not None and budget.spent())
        try:
            if retire:
                line.send((task_id, "retire", None))
            hooks.reply(line, reply)
        except MemoryError:
            with contextlib.suppress(OSError):
                line.send((task_id, "memory", "the job's result exceeded the worker memory cap"))
            return
        except OSError:
            return  # the pool went away
        if retire:
            return  # a fragmented heap, or no CPU budget for another task: a fresh worker


__all__ = ["PoolClosed", "TaskLink", "current_link", "exit_when_closed", "worker_main"]
