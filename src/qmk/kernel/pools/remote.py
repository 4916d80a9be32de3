"""A pool whose workers live in another process: the kernel's end of the Dask bridge.

:class:`RemotePool` is what the kernel runs its jobs on with ``qmk serve --dask``: an
``Executor`` (``submit``, ``cancel``, ``listen``, ``request``, ``shutdown``,
``max_workers``) whose capacity is a user-mode server, the Dask bridge
(:mod:`qmk.kernel.pools.dask_bridge`), reached over a Unix socket. The bridge holds the
Dask client (and a ``local:N`` cluster); the kernel's process loads neither
``distributed`` nor the Dask pool. The line is the worker wire
(:mod:`qmk.kernel.pools.wire`): frames of pickles each way, the kernel's end
non-blocking and buffered, and what the bridge sends unpickled as plain data only, so
the bridge cannot make the kernel run code. The messages are the local pool's
(``(task id, kind, value)``: ``ok``, ``note``, ``hello``) plus ``failed`` (a task's
error with its kind: ``memory``, ``cpu``, ``killed``, ``died``) and ``status`` (the
bridge's capacity). The kernel sends ``run``, ``kill``, ``request`` and ``queue`` (its
queue, for the cluster's autoscaler).

**The bridge comes and goes.** ``qmk serve`` holds the listening socket across the
bridge's restarts (:mod:`qmk.serve.gateways`), so the pool's connection waits in its
backlog while a new bridge starts. When the line breaks (the bridge was killed), every
task out on it fails with :class:`~qmk.kernel.pools.pool.WorkerLost`: the capacity went
away, not by the job's fault. The kernel queues each such job again, as a preemption,
and its next start resumes from its latest checkpoint (the fault policies read the
checkpoint a start resumes from, so only the kernel's dispatch may choose it). That
start's task waits here, with those not sent yet, and goes out on the next line once
that bridge says hello: no accepted job is lost and none fails. A task the kernel
cancels fails at once with :class:`~qmk.kernel.pools.pool.WorkerKilled`; the bridge is
told to kill it on the cluster.

**Checkpoints.** The bridge cannot write into the kernel's data directory (it is
confined as a worker is). A job's note that carries a saved state's bytes (``state``)
is written here, into the folder its task's argument names (``checkpoint_dir``, the
kernel's own choice, never a path the bridge gives), before the listener hears it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qmk.kernel.pools.future import TaskFuture
from qmk.kernel.pools.pool import (
    TaskError,
    WorkerCpuLimit,
    WorkerDied,
    WorkerKilled,
    WorkerLost,
    WorkerMemoryError,
)
from qmk.kernel.pools.wire import Broken, PoolLine
from qmk.kernel.pools.wire import message as read_message

_log = logging.getLogger("qmk.kernel.dask")

#: How often the pool tries a bridge that does not listen yet (one started alone).
RETRY_S = 0.5
#: How often the pool looks at the kernel's queue to tell the bridge (when it changed).
QUEUE_LOOK_S = 0.25
#: The errors a bridge reports, by their kind (never ``lost``: only the pool sees its
#: line break, and a bridge must not have a job started again at will).
_ERRORS: dict[str, type[TaskError]] = {
    cls.kind: cls for cls in (WorkerMemoryError, WorkerCpuLimit, WorkerKilled, WorkerDied)
}


@dataclass(slots=True, eq=False)
class _Task:
    task_id: int
    future: Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    listener: Callable[[Any], None] | None = None


class RemotePool(Executor):
    """Runs tasks on the workers of a bridge process over the worker wire (see the module).

    Make it on the thread of ``loop`` and call it there (the kernel's loop drives it).

    Args:
        connect: opens a new line to the bridge: a connected socket's descriptor, now
            the pool's (raises OSError where nothing listens). The kernel's room opens
            no socket itself: ``qmk serve`` gives it one of the wire's.
        where: the bridge's socket, as the pool's log lines name it.
        loop: the event loop that drives the pool.
        max_frame: the longest frame the bridge may send (None: no limit).
    """

    def __init__(
        self,
        connect: Callable[[], int],
        *,
        where: str,
        loop: asyncio.AbstractEventLoop,
        max_frame: int | None = None,
    ) -> None:
        self.connect = connect
        self.where = where
        self.loop = loop
        self.max_frame = max_frame
        #: How many jobs the bridge runs at once (its last word; 1 until it says).
        self.max_workers = 1
        #: The bridge's Dask workers now, and those it lost (the kernel's metrics).
        self.known_workers = 0
        self.lost_workers = 0
        #: How many times the line to the bridge broke under the pool.
        self.lines_lost = 0
        #: Tasks handed back as lost (out on a line that broke: their bridge went away).
        self.handed_back = 0
        self._ids = itertools.count(1)
        self._tasks: dict[int, _Task] = {}
        self._by_future: dict[Future[Any], int] = {}
        self._out: set[int] = set()  # sent on the current line
        self._line: PoolLine | None = None
        self._ready = False  # the bridge on the current line said hello
        self._writing = False
        self._closed = False
        self._retry: asyncio.TimerHandle | None = None
        self._said_waiting = False
        self._resize: Callable[[int], None] | None = None
        self._demand: Callable[[], tuple[int, int]] | None = None
        self._told: Any = None
        self._queue_timer: asyncio.TimerHandle | None = None
        self._connect()

    # ------------------------------------------------------------------ the Executor

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Queue ``fn(*args, **kwargs)`` for the bridge; its future (running at once)."""
        if self._closed:
            raise RuntimeError("cannot submit after shutdown")
        future: Future[Any] = TaskFuture()
        future.set_running_or_notify_cancel()
        task = _Task(next(self._ids), future, fn, args, kwargs)
        self._tasks[task.task_id] = task
        self._by_future[future] = task.task_id
        if self._ready:
            self._send_task(task)
        return future

    def cancel(self, future: Future[Any], reason: str = "cancelled") -> bool:
        """Stop ``future``'s task: it fails at once with :class:`WorkerKilled`, and the
        bridge kills it on the cluster. False when it had finished."""
        task = self._forget(future)
        if task is None:
            return False
        if task.task_id in self._out:
            self._out.discard(task.task_id)
            self._send(("kill", task.task_id, reason))
        future.set_exception(WorkerKilled(reason, {"reason": reason}))
        return True

    def listen(self, future: Future[Any], listener: Callable[[Any], None]) -> None:
        """Have ``listener(note)`` called with each note of ``future``'s task."""
        task_id = self._by_future.get(future)
        if task_id is not None:
            self._tasks[task_id].listener = listener

    def request(self, future: Future[Any], payload: Any) -> bool:
        """Send ``payload`` to ``future``'s running task; False when it is not out now."""
        task_id = self._by_future.get(future)
        if task_id is None or task_id not in self._out:
            return False
        return self._send(("request", task_id, payload))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Close the line (the bridge kills what it holds for it) and fail what is left
        with :class:`WorkerKilled` (``shutdown``). Never waits: the bridge's work is
        its own."""
        if self._closed:
            return
        self._closed = True
        for timer in (self._retry, self._queue_timer):
            if timer is not None:
                timer.cancel()
        self._drop_line()
        tasks = list(self._tasks.values())
        self._tasks.clear()
        self._by_future.clear()
        for task in tasks:
            if not task.future.done():
                task.future.set_exception(WorkerKilled("shutdown", {"reason": "shutdown"}))

    def busy(self) -> int:
        """How many tasks the pool holds (out, or waiting for a bridge)."""
        return len(self._tasks)

    def watch_queue(
        self,
        demand: Callable[[], tuple[int, int]],
        capacity: Callable[[int], None] | None = None,
    ) -> None:
        """Tell the bridge the kernel's queue (``demand()``: jobs queued, jobs out) for
        the cluster's autoscaler, when it changes; ``capacity(n)`` hears each new
        :attr:`max_workers` the bridge says."""
        self._demand = demand
        self._resize = capacity
        self._look_at_queue()

    # ------------------------------------------------------------------ the line

    def _connect(self) -> None:
        """Open a line to the bridge (or try again in :data:`RETRY_S`)."""
        self._retry = None
        if self._closed:
            return
        try:
            fd = self.connect()  # a listening socket takes it at once (its backlog)
        except OSError as exc:
            if not self._said_waiting:
                _log.warning("the Dask bridge does not listen at %s yet: %s", self.where, exc)
                self._said_waiting = True
            self._retry = self.loop.call_later(RETRY_S, self._connect)
            return
        self._said_waiting = False
        self._line = PoolLine(fd, self.max_frame)
        self.loop.add_reader(fd, self._on_readable)

    def _drop_line(self) -> None:
        line, self._line = self._line, None
        self._ready = False
        if line is None:
            return
        with contextlib.suppress(ValueError, RuntimeError):
            self.loop.remove_reader(line.fd)
            if self._writing:
                self.loop.remove_writer(line.fd)
        self._writing = False
        line.close()

    def _lost(self, why: str) -> None:
        """The line broke (the bridge died, or broke the protocol): the tasks out on it
        fail as lost (the kernel starts their jobs again, from their checkpoints), those
        not sent wait for the next line, which the pool opens at once."""
        lost = [self._tasks[task_id] for task_id in sorted(self._out)]
        self._out.clear()
        self._drop_line()
        self.lines_lost += 1
        _log.warning(
            "the Dask bridge went away (%s); %d job(s) handed back to start again", why, len(lost)
        )
        if not self._closed:
            self._retry = self.loop.call_soon(self._connect)  # type: ignore[assignment]
        # last: a future's callback may submit again (the kernel's dispatch)
        for task in lost:
            self._forget(task.future)
            self.handed_back += 1
            data = {"reason": "bridge-lost", "why": why}
            task.future.set_exception(WorkerLost(f"the Dask bridge went away ({why})", data))

    def _send(self, message: Any) -> bool:
        line = self._line
        if line is None:
            return False
        try:
            done = line.send(message)
        except OSError:
            self._lost("its socket closed")
            return False
        if not done and not self._writing:
            self.loop.add_writer(line.fd, self._on_writable)
            self._writing = True
        return True

    def _on_writable(self) -> None:
        line = self._line
        if line is None:
            return
        try:
            done = line.flush()
        except OSError:
            self._lost("its socket closed")
            return
        if done and self._writing:
            self.loop.remove_writer(line.fd)
            self._writing = False

    def _send_task(self, task: _Task) -> None:
        """Send ``task``, with the bytes of the state its argument resumes from (a path
        in the kernel's data directory, which the bridge cannot read)."""
        resume = getattr(task.args[0], "resume", None) if task.args else None
        state = None
        if isinstance(resume, str):
            try:
                state = Path(resume).read_bytes()
            except OSError:
                state = None  # the worker's run says the state is missing
        if self._send(("run", task.task_id, task.fn, task.args, task.kwargs, state)):
            self._out.add(task.task_id)

    def _on_readable(self) -> None:
        line = self._line
        if line is None:
            return
        try:
            bodies, eof = line.receive()
        except Broken as exc:
            self._lost(f"it broke the protocol: {exc}")
            return
        for body in bodies:
            try:
                message = read_message(body)
            except Exception as exc:
                self._lost(f"a message that is not plain data: {exc}")
                return
            if not self._take(message):
                self._lost("a message that is not (task id, kind, value)")
                return
        if eof:
            self._lost("its socket closed")

    # ------------------------------------------------------------------ messages

    def _take(self, message: Any) -> bool:
        """Act on one message of the bridge; False when it is no message of the wire."""
        if not (
            isinstance(message, tuple)
            and len(message) == 3
            and isinstance(message[0], int)
            and isinstance(message[1], str)
        ):
            return False
        task_id, kind, value = message
        if kind in ("hello", "status"):
            self._status(value, hello=kind == "hello")
            return True
        task = self._tasks.get(task_id)
        if task is None or task_id not in self._out:
            return True  # cancelled meanwhile, or of an attempt sent on a line now gone
        if kind == "note":
            self._note(task, value)
            return True
        self._forget(task.future)
        if kind == "ok":
            task.future.set_result(value)
        elif kind == "failed" and isinstance(value, tuple) and len(value) == 3:
            error_kind, text, data = value
            cls = _ERRORS.get(str(error_kind), TaskError)
            task.future.set_exception(cls(str(text), dict(data or {})))
        else:
            task.future.set_exception(WorkerDied(f"the bridge sent a reply of kind {kind!r}"))
        return True

    def _status(self, value: Any, *, hello: bool) -> None:
        if not isinstance(value, dict):
            return
        workers = value.get("max_workers")
        if isinstance(workers, int) and workers >= 1 and workers != self.max_workers:
            self.max_workers = workers
            if self._resize is not None:
                self._resize(workers)
        for name in ("known_workers", "lost_workers"):
            count = value.get(name)
            if isinstance(count, int):
                setattr(self, name, count)
        if hello and not self._ready:
            self._ready = True
            _log.info("the Dask bridge (pid %s) serves: %s", value.get("pid"), value.get("dask"))
            self._told = None  # the new bridge hears the queue anew
            waiting = [t for t in self._tasks.values() if t.task_id not in self._out]
            for task in waiting:
                self._send_task(task)

    def _note(self, task: _Task, note: Any) -> None:
        """A running task's note: a saved state's bytes written into the task's own
        checkpoint folder first (module docstring), then the listener."""
        if isinstance(note, dict) and isinstance(note.get("state"), bytes):
            note = dict(note)
            data = note.pop("state")
            folder = getattr(task.args[0], "checkpoint_dir", None) if task.args else None
            name = Path(str(note.get("path") or "")).name
            if folder is None or not name or name.startswith("."):
                return  # nowhere of the kernel's to keep it: no checkpoint to record
            path = Path(str(folder)) / name
            try:
                _write_private(path, data)
            except OSError as exc:
                _log.warning("a checkpoint of the Dask bridge could not be kept: %s", exc)
                return
            note["path"] = str(path)
        if task.listener is not None:
            task.listener(note)

    def _forget(self, future: Future[Any]) -> _Task | None:
        task_id = self._by_future.pop(future, None)
        if task_id is None:
            return None
        self._out.discard(task_id)
        return self._tasks.pop(task_id, None)

    def _look_at_queue(self) -> None:
        """Tell the bridge the kernel's queue when it changed (every :data:`QUEUE_LOOK_S`)."""
        self._queue_timer = None
        if self._closed or self._demand is None:
            return
        if self._ready:
            depth = tuple(self._demand())
            if depth != self._told and self._send(("queue", 0, depth)):
                self._told = depth
        self._queue_timer = self.loop.call_later(QUEUE_LOOK_S, self._look_at_queue)


def _write_private(path: Path, data: bytes) -> None:
    """Write a state file atomically, 0600 in a 0700 folder."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


__all__ = ["QUEUE_LOOK_S", "RETRY_S", "RemotePool"]
