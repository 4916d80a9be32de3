"""A process pool for jobs: confined workers fed over sockets, with real kill and limits.

:class:`WorkerPool` is a :class:`concurrent.futures.Executor`: ``submit(fn, *args)``
returns a :class:`~concurrent.futures.Future`, ``shutdown()`` stops the workers. Its one
extension is :meth:`WorkerPool.cancel`, which also stops a task that is already running:
it SIGKILLs the task's worker, fails the future with :class:`WorkerKilled` at once, and a
fresh worker takes the dead one's place. Anything that offers ``submit``, ``shutdown`` and
``cancel(future, reason)`` (a Dask ``distributed.Client`` wrapper, for instance) can take
this pool's place in the kernel.

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

**The pool never waits on a worker.** Its end of every worker's socket is non-blocking:
a message is a frame (an 8-byte length, then the pickle), read as far as the socket
holds and kept until the rest comes; a message to a worker that is not reading waits in
the pool's buffer. A worker stopped in the middle of a reply (``SIGSTOP``, a swapped-out
machine, a hostile task) holds only its own task: the other workers, the loop and the
kernel's timers go on, and when the task's time is up :meth:`~WorkerPool.cancel` kills
the worker. Replies are plain data (None, bool, int, float, complex, str, bytes, tuple,
list, dict, set), unpickled with no global allowed: a worker cannot make the pool run
code. A frame longer than the worker's memory cap breaks the protocol: the worker is
killed and its task fails with :class:`WorkerDied`.

Futures complete outside the pool's lock, so a done-callback may call the pool again.

Workers start from a ``forkserver`` (the default context) that has already imported the
modules in ``preload`` (the executor), so a new worker is ready in about 10 ms and a task
costs one round trip. Each worker confines itself before its first task
(:mod:`qmk.kernel.sandbox`: no network, a Landlock filesystem, an unprivileged user when
the pool runs as root, rlimits on memory, CPU time and file size, a private temp dir, no
inherited descriptors) and tells the pool what holds (:attr:`WorkerPool.confinement`);
the pool logs it once, with a warning for every gap. A worker whose pool dies without a
word (``kill -9`` of the pool's process) ends at once, whatever its task is doing: a
thread of it waits for its socket to close (:func:`exit_when_closed`, for any job
process fed over a socket), and a worker of the forkserver has the OS kill it when the
forkserver, which ends with the pool's process, does (for a task in one long C call
that holds the GIL, where the thread cannot run). A task that runs out of memory
fails with :class:`WorkerMemoryError`, one past its CPU time with
:class:`WorkerCpuLimit`; either worker is replaced.

Functions and arguments travel by pickle, so ``fn`` must be importable (a module-level
function). Errors raised by ``fn`` come back as :class:`TaskError` carrying the exception
type and message (and ``to_json()`` of a :class:`~qmk.errors.QMKError`).

**Talking to a running task.** A task's function may send the pool notes while it
runs (:func:`current_link`, :meth:`TaskLink.notify`); the pool hands each to the
listener :meth:`WorkerPool.listen` set on the task's future, before the task's result.
The pool may send a running task requests (:meth:`WorkerPool.request`): they wait in the
socket until the task looks (:meth:`TaskLink.pending`, :meth:`TaskLink.requests`). No
signal announces them: a signal could reach a fresh worker before it installs its
handler and kill it. The kernel's checkpoints and preemptions at fences travel this way.

Test hooks (each a pool option that ``Kernel.open`` reads from an environment variable
through :func:`kernel_pool`; nothing else uses them):

- the **gate** (``gate=``, :data:`GATE_ENV`): a FIFO that holds every task in its
  worker, before it runs, until the FIFO yields one byte for it (one byte lets one task
  through). The test that holds the FIFO's write end opens the gate for good by removing
  the FIFO and then closing its end: a waiting worker sees the end of file, a new one
  finds no FIFO. A test thus decides exactly how many tasks run and when, whatever the
  machine's speed.
- the **pause gate** (``pause_gate=``, :data:`PAUSE_GATE_ENV`) holds a running task at
  each point where it calls :meth:`TaskLink.pause` (the executor's fences) until a byte
  comes or a request arrives: a test can hold a job at a fence, take a checkpoint there,
  preempt it or kill the kernel.
- the **stall** (``stall=``, :data:`STALL_ENV`): a FIFO; a worker about to send a task's
  reply that finds a byte in it writes half the reply, stops itself (``SIGSTOP``) and
  writes the rest only if continued, as a worker frozen in the middle of a reply.
- the **probe** (``probe=``, :data:`PROBE_ENV`): ``"module:function"``, imported by each
  worker before it confines itself and called as ``function(fn, args, kwargs)`` in
  place of each task, after it: a test's escape attempts run where a job would.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import io
import itertools
import logging
import multiprocessing
import multiprocessing.connection as mpc
import os
import pickle
import select
import shutil
import signal
import stat
import struct
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qmk.kernel.sandbox import (
    CpuBudget,
    Isolation,
    Plan,
    confine,
    die_with_parent,
    readable_roots,
    resolve_user,
    unreachable,
)

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext, SpawnContext

    from qmk.kernel.config import KernelConfig

_log = logging.getLogger("qmk.kernel.workers")

#: Modules a worker imports before its first task.
DEFAULT_PRELOAD: tuple[str, ...] = (
    "qmk.execution.executor",
    "qmk.kernel.attempt",
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
#: The same for the pool's ``stall`` (a FIFO whose bytes freeze workers mid-reply).
STALL_ENV = "QMK_TEST_WORKER_STALL"
#: The same for the pool's ``probe`` (``module:function`` run in place of each task).
PROBE_ENV = "QMK_TEST_WORKER_PROBE"

#: The folder of the data directory that workers write checkpoints into.
CHECKPOINTS = "checkpoints"

_HEADER = struct.Struct("!Q")
_CHUNK = 1 << 20  # bytes per read of a big message
#: Bytes of a first read. A read allocates its whole size first: 1 MiB costs about
#: 20 us more than 64 KiB, for a task or reply of a few hundred bytes.
_FIRST_READ = 1 << 16
_READ_BUDGET = 8 << 20  # bytes one reader callback takes before it lets the loop go on
#: A frame whose body is at most this long goes in one write with its header (a small
#: task or reply wakes its reader once); a longer one in two, without a copy.
_JOIN_BELOW = 1 << 16


# --------------------------------------------------------------------------- the wire


class _Broken(Exception):
    """A worker broke the protocol (a frame too long, not a message)."""


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain data only: no global but a few harmless builtins."""

    _ALLOWED = frozenset({"complex", "set", "frozenset", "bytearray", "range", "slice"})

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in self._ALLOWED:
            return getattr(__import__("builtins"), name)
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def _plain(body: bytes) -> Any:
    return _PlainUnpickler(io.BytesIO(body)).load()


class _Line:
    """The pool's end of a worker's socket: non-blocking, framed, buffered both ways.

    Only the thread that drives the pool reads it; writes happen under the pool's lock.
    """

    __slots__ = ("_in", "_out", "fd", "max_frame")

    def __init__(self, fd: int, max_frame: int | None) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.max_frame = max_frame
        self._in = bytearray()
        self._out: collections.deque[bytes | memoryview] = collections.deque()

    def receive(self, budget: int = _READ_BUDGET) -> tuple[list[bytes], bool]:
        """Read what the socket holds (about ``budget`` bytes at most): the complete
        frames' bodies, and whether the worker's end is closed. Never blocks.

        Raises:
            _Broken: a frame longer than ``max_frame``.
        """
        eof = False
        got = 0
        size = _FIRST_READ
        while got < budget:
            try:
                chunk = os.read(self.fd, size)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                eof = True  # reset by a dying worker
                break
            if not chunk:
                eof = True
                break
            self._in += chunk
            got += len(chunk)
            if len(chunk) == size:  # more waits, likely a big message: bigger reads
                size = _CHUNK
        return self._frames(), eof

    def _frames(self) -> list[bytes]:
        frames: list[bytes] = []
        buffer = self._in
        at = 0
        while len(buffer) - at >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer, at)
            if self.max_frame is not None and size > self.max_frame:
                raise _Broken(f"a frame of {size} bytes (at most {self.max_frame})")
            if len(buffer) - at - _HEADER.size < size:
                break
            start = at + _HEADER.size
            frames.append(bytes(buffer[start : start + size]))
            at = start + size
        if at:
            del buffer[:at]
        return frames

    def send(self, message: Any) -> None:
        """Queue ``message`` and write what the socket takes now (never blocks).

        Raises:
            OSError: the worker's end is gone. Pickling errors come before anything
            is queued.
        """
        body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        header = _HEADER.pack(len(body))
        if len(body) <= _JOIN_BELOW:  # one write: the worker wakes once, reads it whole
            self._out.append(header + body)
        else:
            self._out += (header, body)
        self.flush()

    def flush(self) -> bool:
        """Write what the socket takes; True when nothing waits any more."""
        while self._out:
            head = self._out[0]
            try:
                written = os.write(self.fd, head)
            except (BlockingIOError, InterruptedError):
                return False
            if written == len(head):
                self._out.popleft()
            else:
                self._out[0] = memoryview(head)[written:]
        return True

    @property
    def waiting(self) -> bool:
        """Whether a message waits for the worker to read."""
        return bool(self._out)

    def close(self) -> None:
        self._out.clear()
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


class _WorkerLine:
    """The worker's end of its socket: blocking, framed (the pool's framing)."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, True)
        self.fd = fd
        self._in = bytearray()

    def fileno(self) -> int:
        return self.fd

    def buffered(self) -> bool:
        """Whether a whole message waits in this process already."""
        if len(self._in) < _HEADER.size:
            return False
        (size,) = _HEADER.unpack_from(self._in, 0)
        return len(self._in) - _HEADER.size >= size

    def poll(self) -> bool:
        """Whether a message waits (or is on its way: then :meth:`recv` may wait)."""
        return self.buffered() or bool(select.select([self.fd], [], [], 0)[0])

    def recv(self) -> Any:
        """The next message (waits for it). Raises EOFError when the pool is gone."""
        while not self.buffered():
            size = _FIRST_READ
            if len(self._in) >= _HEADER.size:  # as much of the frame as is missing
                (body,) = _HEADER.unpack_from(self._in, 0)
                size = max(_FIRST_READ, min(_CHUNK, _HEADER.size + body - len(self._in)))
            try:
                chunk = os.read(self.fd, size)
            except OSError:
                raise EOFError from None
            if not chunk:
                raise EOFError
            self._in += chunk
        (size,) = _HEADER.unpack_from(self._in, 0)
        body = bytes(self._in[_HEADER.size : _HEADER.size + size])
        del self._in[: _HEADER.size + size]
        return pickle.loads(body)

    def send(self, message: Any, *, stall: bool = False) -> None:
        """Write ``message``; with ``stall`` (the test hook), write half of it, stop
        this process, and write the rest once continued."""
        body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        header = _HEADER.pack(len(body))
        if stall:
            half = (len(header) + len(body)) // 2 - len(header)
            self._write(header)
            self._write(memoryview(body)[:half])
            os.kill(os.getpid(), signal.SIGSTOP)
            self._write(memoryview(body)[half:])
            return
        if len(body) <= _JOIN_BELOW:  # one write: the pool wakes once, reads it whole
            self._write(header + body)
        else:  # no copy of a big reply within the worker's memory cap
            self._write(header)
            self._write(body)

    def _write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]


# --------------------------------------------------------------------------- the worker


class TaskLink:
    """The running task's line to its pool, in a worker process (see the module docstring)."""

    def __init__(
        self,
        conn: _WorkerLine,
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
        """Whether a request (or anything) waits in the socket (no wait, one system call)."""
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
            if self._conn.buffered():  # a request came in with an earlier read:
                ready: list[int] = [*select.select([gate], [], [], 0)[0], pipe]  # a byte first
            else:
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
    it after the process confined itself (:func:`qmk.kernel.sandbox.confine`): the
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


def _take_fd(conn: mpc.Connection) -> int:
    """The descriptor of ``conn``'s socket, now ours (the connection is closed)."""
    fd = os.dup(conn.fileno())
    conn.close()
    return fd


def _open_gate(gate: str | None) -> int | None:
    """The gate FIFO's read end (non-blocking); None when there is no gate (any more)."""
    if gate is None:
        return None
    try:
        return os.open(gate, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None  # removed: the gate was opened for good


def _pass_gate(gate: int, conn: _WorkerLine, held: list[Any]) -> bool:
    """Wait at the gate FIFO ``gate`` for a byte, or for its end of file (its writer is
    gone: open for good). Requests for the held task that come meanwhile go to ``held``.
    False when the pool went away meanwhile."""
    pipe = conn.fileno()
    while True:
        if conn.buffered():
            ready: list[int] = [pipe]
        else:
            ready, _, _ = select.select([gate, pipe], [], [])
        if pipe in ready:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return False  # the pool closed our socket: it is gone
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


def _stalls(stall: int | None) -> tuple[bool, int | None]:
    """The stall hook: (whether this reply stalls, the FIFO still to look at)."""
    if stall is None:
        return False, None
    try:
        byte = os.read(stall, 1)
    except BlockingIOError:
        return False, stall
    if not byte:
        os.close(stall)
        return False, None  # its writer is gone: no more stalls
    return True, stall


def _load_probe(probe: str | None) -> tuple[Callable[..., Any] | None, str | None]:
    if probe is None:
        return None, None
    module, _, name = probe.partition(":")
    try:
        return getattr(importlib.import_module(module), name), None
    except Exception as exc:
        return None, f"the probe {probe!r} cannot be loaded: {exc}"


def _worker_main(
    conn: mpc.Connection,
    plan: Plan | None,
    memory_mb: int | None,
    gate: str | None = None,
    pause_gate: str | None = None,
    stall: str | None = None,
    probe: str | None = None,
    from_forkserver: bool = False,
) -> None:
    """A worker: confine itself, say so, run tasks until the pool closes or sends None.

    It ends when its pool's process dies: its socket closes (:func:`exit_when_closed`),
    and, when it was forked by the forkserver (which ends with the pool's process), its
    parent ends (:func:`~qmk.kernel.sandbox.die_with_parent`, which needs no GIL).
    """
    global _LINK
    parent = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    line = _WorkerLine(_take_fd(conn))
    gate_fd = _open_gate(gate)
    pause_fd = _open_gate(pause_gate)
    stall_fd = _open_gate(stall)
    probe_fn, refusal = _load_probe(probe)
    budget: CpuBudget | None = None
    report: dict[str, Any] | None = None
    keep = [fd for fd in (line.fd, gate_fd, pause_fd, stall_fd) if fd is not None]
    try:
        if plan is None:
            if memory_mb is not None:
                import resource

                cap = memory_mb * 1024 * 1024
                resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        else:
            confinement, budget = confine(plan, keep)
            report = confinement.to_json()
    except Exception as exc:  # fail closed: never run a task unconfined
        refusal = f"the worker could not confine itself: {type(exc).__name__}: {exc}"
        report = {"error": refusal}
    try:  # after confine, so the thread is as confined as the worker
        exit_when_closed(line.fd)
    except RuntimeError as exc:
        if report is not None and isinstance(report.get("gaps"), list):
            report["gaps"].append(f"orphans: a worker outlives a dead pool ({exc})")
    if from_forkserver:  # a spawned worker's parent is a thread of the pool's process
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
        task_id, fn, args, kwargs = message
        held: list[Any] = []
        if gate_fd is not None and not _pass_gate(gate_fd, line, held):
            return
        _LINK = TaskLink(line, task_id, pause_fd, held)
        try:
            if refusal is not None:
                raise RuntimeError(refusal)
            if budget is not None:
                budget.start_task()
            value = fn(*args, **kwargs) if probe_fn is None else probe_fn(fn, args, kwargs)
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
        retire = reply[1] == "memory" or (budget is not None and budget.spent())
        stalled, stall_fd = _stalls(stall_fd)
        try:
            if retire:
                line.send((task_id, "retire", None))
            line.send(reply, stall=stalled)
        except MemoryError:
            with contextlib.suppress(OSError):
                line.send((task_id, "memory", "the job's result exceeded the worker memory cap"))
            return
        except OSError:
            return  # the pool went away
        if retire:
            return  # a fragmented heap, or no CPU budget for another task: a fresh worker


# --------------------------------------------------------------------------- the pool


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
    line: _Line
    temp_dir: str | None = None
    task: _Task | None = None
    killed: bool = False
    retiring: bool = False  # exits after its current reply (memory cap hit, broken pipe)
    closed: bool = False  # its end of the socket is closed: only its sentinel matters
    fds: tuple[int, int] | None = None  # (socket, sentinel) watched by the event loop
    writing: bool = False  # loop mode: the loop waits for its socket to take more
    kill_timer: Any = None  # loop mode: kills a retiring worker that does not exit
    extra: dict[str, Any] = field(default_factory=dict)


#: A completion to deliver once the pool's lock is released: (future, value, exception).
_Outcome = tuple[Future[Any], Any, BaseException | None]


class WorkerPool(Executor):
    """Runs tasks in ``max_workers`` persistent, confined worker processes.

    Args:
        max_workers: how many worker processes.
        memory_mb: address-space cap of each worker in MiB (None: no cap).
        context: the multiprocessing start method, "forkserver" (default) or "spawn".
        preload: modules each worker imports before its first task.
        loop: an asyncio event loop to drive the workers from (create the pool on that
            loop's thread). None: a dispatcher thread of the pool's own drives them.
        isolation: what the workers close around themselves
            (:class:`~qmk.kernel.sandbox.Isolation`; the default closes the network,
            the filesystem but for a temp dir of each worker's own, and descriptors).
            None: nothing but the memory cap.
        gate: a test hook, the path of a FIFO that holds each task in its worker until a
            byte comes (see the module docstring). None: tasks run at once.
        pause_gate: a test hook, the path of a FIFO that holds a running task wherever
            it calls :meth:`TaskLink.pause` (see the module docstring).
        stall: a test hook, the path of a FIFO whose bytes freeze workers in the middle
            of a reply (see the module docstring).
        probe: a test hook, ``"module:function"`` run in place of each task.

    Raises:
        ValueError: a bad option; KeyError: ``isolation.user`` is no user here.
    """

    def __init__(
        self,
        max_workers: int = 2,
        *,
        memory_mb: int | None = None,
        context: str = "forkserver",
        preload: Iterable[str] = DEFAULT_PRELOAD,
        loop: asyncio.AbstractEventLoop | None = None,
        isolation: Isolation | None = Isolation(),  # noqa: B008 - a frozen value
        gate: str | os.PathLike[str] | None = None,
        pause_gate: str | os.PathLike[str] | None = None,
        stall: str | os.PathLike[str] | None = None,
        probe: str | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        for fifo in (gate, pause_gate, stall):
            if fifo is not None and not stat.S_ISFIFO(os.stat(fifo).st_mode):
                raise ValueError(f"the gate {os.fspath(fifo)!r} is not a FIFO")
        if context not in ("forkserver", "spawn"):
            raise ValueError("context must be 'forkserver' or 'spawn' (fork is unsafe here)")
        if probe is not None and ":" not in probe:
            raise ValueError("probe must be 'module:function'")
        self._ctx: ForkServerContext | SpawnContext
        if context == "forkserver":
            self._ctx = multiprocessing.get_context("forkserver")
            self._ctx.set_forkserver_preload(list(preload))
        else:
            self._ctx = multiprocessing.get_context("spawn")
        self.max_workers = max_workers
        self.memory_mb = memory_mb
        self.isolation = isolation
        self.gate = None if gate is None else os.fspath(gate)
        self.pause_gate = None if pause_gate is None else os.fspath(pause_gate)
        self.stall = None if stall is None else os.fspath(stall)
        self.probe = probe
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
        self._ids = itertools.count(1)
        self._shutdown = False
        self._stopped = False
        self._watching = loop is not None  # False while a synchronous drain runs
        self._pump_scheduled = False
        self.spawned = 0
        self._temp_root: str | None = None
        self._plan: dict[str, Any] | None = None
        if isolation is not None:
            self._prepare(isolation)
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

    def _prepare(self, isolation: Isolation) -> None:
        """Resolve ``isolation`` into the plan every worker gets, make the temp root
        (hidden from the workers) and the writable directories (reachable by them)."""
        uid = gid = None
        user = None
        if isolation.user is not None and os.geteuid() == 0:
            uid, gid, user = resolve_user(isolation.user)
        root = tempfile.mkdtemp(prefix="qmk-workers-", dir=isolation.temp_root)
        os.chmod(root, 0o711)  # a worker reaches its own dir, lists none
        self._temp_root = root
        weakref.finalize(self, shutil.rmtree, root, True)
        for path in isolation.writable:
            _make_dirs(path)
            if uid is not None and gid is not None:
                _open_to(path, uid, gid, isolation.hidden)
        self._plan = {
            "network": isolation.network,
            "filesystem": isolation.filesystem,
            "uid": uid,
            "gid": gid,
            "user": user,
            "cpu_s": isolation.cpu_s,
            "file_mb": isolation.file_mb,
            "memory_mb": self.memory_mb,
            "readable": readable_roots((*isolation.hidden, root)) if isolation.filesystem else (),
            "writable": tuple(os.path.realpath(p) for p in isolation.writable),
            "gaps": isolation.gaps,
        }

    def _worker_plan(self) -> tuple[Plan | None, str | None]:
        """The plan of a new worker and its temp dir (None, None: no isolation)."""
        if self._plan is None or self._temp_root is None:
            return None, None
        temp_dir = tempfile.mkdtemp(prefix="w", dir=self._temp_root)
        uid, gid = self._plan["uid"], self._plan["gid"]
        if uid is not None:
            os.chown(temp_dir, uid, gid)
        return Plan(temp_dir=temp_dir, **self._plan), temp_dir

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
        plan, temp_dir = self._worker_plan()
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_worker_main,
            args=(
                child,
                plan,
                self.memory_mb,
                self.gate,
                self.pause_gate,
                self.stall,
                self.probe,
                self._ctx.get_start_method() == "forkserver",
            ),
            name="qmk-worker",
            daemon=True,
        )
        try:
            process.start()
        except BaseException:
            parent.close()
            child.close()
            if temp_dir is not None:
                shutil.rmtree(temp_dir, ignore_errors=True)
            raise
        child.close()
        self.spawned += 1
        max_frame = None if self.memory_mb is None else self.memory_mb * 1024 * 1024
        return _Worker(process=process, line=_Line(_take_fd(parent), max_frame), temp_dir=temp_dir)

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
            with contextlib.suppress(_Broken):  # what it wrote before it died
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
                limit = None if self._plan is None else self._plan["cpu_s"]
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
            message = _plain(body)
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
            if not task.future.running() and not task.future.set_running_or_notify_cancel():
                self._by_future.pop(task.future, None)
                continue
            try:
                worker.line.send((task.task_id, task.fn, task.args, task.kwargs))
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
        if self._temp_root is not None:
            shutil.rmtree(self._temp_root, ignore_errors=True)

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
                        events = select.POLLIN | (select.POLLOUT if worker.line.waiting else 0)
                        poller.register(worker.line.fd, events)
                        lines[worker.line.fd] = worker
                    poller.register(worker.process.sentinel, select.POLLIN)
            self._deliver()
            if done:
                return
            for fd, events in poller.poll():
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
                if events & select.POLLOUT:
                    with self._lock:
                        self._flush_locked(worker_of)
                if events & ~select.POLLOUT:
                    self._receive(worker_of)
            self._deliver()

    def _receive(self, worker: _Worker) -> None:
        """Take what ``worker`` sent (never waits for the rest of a message)."""
        if worker.closed:
            return
        try:
            bodies, eof = worker.line.receive()
        except _Broken as exc:
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
            self.loop.remove_writer(worker.fds[0])
            worker.writing = False
        worker.fds = None

    def _sync_writers(self) -> None:
        """On the loop: watch for room in the socket of every worker a message waits for."""
        if self.loop is None or not self._watching:
            return
        with self._lock:
            for worker in self._workers:
                if worker.line.waiting and not worker.writing and worker.fds is not None:
                    self.loop.add_writer(worker.fds[0], self._on_writable, worker)
                    worker.writing = True

    def _on_writable(self, worker: _Worker) -> None:
        """The loop saw room in ``worker``'s socket: write what waits for it."""
        with self._lock:
            done = self._flush_locked(worker)
        if done and worker.writing and self.loop is not None and worker.fds is not None:
            self.loop.remove_writer(worker.fds[0])
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
                self.loop.remove_writer(worker.fds[0])
                worker.writing = False
        with self._lock:
            if worker.task is None and not (worker.killed or worker.retiring or worker.closed):
                self._assign_to(worker)
            retire = worker.retiring
        self._deliver()
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


def _make_dirs(path: str) -> None:
    """Make ``path`` and its missing parents, each mode 0700 (as the kernel makes its
    data directory)."""
    missing: list[str] = []
    here = os.path.abspath(path)
    while not os.path.isdir(here):
        missing.append(here)
        here = os.path.dirname(here)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)


def _open_to(path: str, uid: int, gid: int, hidden: Iterable[str]) -> None:
    """Make the writable directory ``path`` usable by workers running as ``uid``/``gid``:
    group ``gid`` may write and search it but not list it, the jobs' folders in it are
    theirs, and the directories between a hidden one and it are searchable by ``gid``
    (only that: their files stay closed by their own modes)."""
    target = Path(os.path.realpath(path))
    for top in (Path(os.path.realpath(h)) for h in hidden):
        if top != target and top not in target.parents:
            continue
        here = top
        for part in target.relative_to(top).parts[:-1]:
            _searchable_by(here, gid)
            here = here / part
        if here != target:
            _searchable_by(here, gid)
    os.chown(target, -1, gid)
    os.chmod(target, 0o730)
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            os.chown(child, uid, gid)


def _searchable_by(directory: Path, gid: int) -> None:
    info = directory.stat()
    if info.st_mode & 0o001 or (info.st_gid == gid and info.st_mode & 0o010):
        return
    os.chown(directory, -1, gid)
    os.chmod(directory, stat.S_IMODE(info.st_mode) | 0o010)


# --------------------------------------------------------------------------- the kernel's pool


def kernel_isolation(config: KernelConfig, data_dir: str | os.PathLike[str]) -> Isolation:
    """The isolation of the kernel's workers: its ``[kernel]`` limits, the data
    directory hidden but for its checkpoints, and (run as root) ``worker_user`` when
    that user can reach the Python installation and the data directory; a gap says why
    not otherwise."""
    from qmk.kernel.errors import ConfigError

    data = os.path.realpath(os.fspath(data_dir))
    user: str | int | None = None
    gaps: list[str] = []
    if os.geteuid() == 0:
        try:
            uid, gid, name = resolve_user(config.worker_user)
        except KeyError:
            raise ConfigError(
                f"kernel.worker_user: no user {config.worker_user!r} on this machine",
                key="kernel.worker_user",
            ) from None
        needed = [(p, "rx") for p in sys.path if p and os.path.isdir(p)]
        needed.append((os.path.dirname(data), "x"))
        for path, access in needed:
            why = unreachable(path, uid, gid, access)
            if why is not None:
                gaps.append(
                    f"user: the workers run as root: {name} (uid {uid}) cannot reach {path}: {why}"
                )
                break
        else:
            user = uid
    return Isolation(
        user=user,
        cpu_s=config.worker_cpu_s,
        file_mb=config.worker_file_mb or config.worker_memory_mb,
        hidden=_hidden(data),
        writable=(os.path.join(data, CHECKPOINTS),),
        gaps=tuple(gaps),
    )


def _hidden(data: str) -> tuple[str, ...]:
    """What the workers may not read: the data directory, or, when the Python code lives
    in it (``qmk serve --data-dir .`` in a checkout), every entry of it that holds no code
    (entries made later are hidden too: no rule covers them)."""
    code = [os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)]

    def holds_code(path: str) -> bool:
        return any(c == path or c.startswith(path + os.sep) for c in code)

    if not holds_code(data):
        return (data,)
    from qmk.kernel.sessions import SECRET_FILE

    try:
        names = set(os.listdir(data))
    except OSError:
        names = set()
    names.add(SECRET_FILE)  # at least one: the walk then goes into the data directory
    return tuple(
        os.path.join(data, name)
        for name in sorted(names)
        if not holds_code(os.path.join(data, name))
    )


def kernel_pool(
    config: KernelConfig,
    data_dir: str | os.PathLike[str],
    *,
    workers: int,
    loop: asyncio.AbstractEventLoop,
) -> WorkerPool:
    """The kernel's default pool, driven by ``loop``: :func:`kernel_isolation`, and the
    test hooks named by :data:`GATE_ENV`, :data:`PAUSE_GATE_ENV`, :data:`STALL_ENV` and
    :data:`PROBE_ENV` (never set outside tests)."""
    return WorkerPool(
        workers,
        memory_mb=config.worker_memory_mb,
        loop=loop,
        isolation=kernel_isolation(config, data_dir),
        gate=os.environ.get(GATE_ENV) or None,
        pause_gate=os.environ.get(PAUSE_GATE_ENV) or None,
        stall=os.environ.get(STALL_ENV) or None,
        probe=os.environ.get(PROBE_ENV) or None,
    )


__all__ = [
    "CHECKPOINTS",
    "DEFAULT_PRELOAD",
    "GATE_ENV",
    "PAUSE_GATE_ENV",
    "PROBE_ENV",
    "STALL_ENV",
    "Isolation",
    "TaskError",
    "TaskLink",
    "WorkerCpuLimit",
    "WorkerDied",
    "WorkerKilled",
    "WorkerMemoryError",
    "WorkerPool",
    "current_link",
    "exit_when_closed",
    "kernel_isolation",
    "kernel_pool",
]
