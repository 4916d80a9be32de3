"""The tests' worker pool: gates, a stall and a probe around the workers' tasks.

Production code carries no test hooks. :class:`GatedPool` is a
:class:`~qmk.kernel.pools.pool.WorkerPool` whose workers run the tests' hooks
(:class:`HookedWorker`, through the pool's public seam ``hooks=``, a
:class:`~qmk.kernel.pools.pool.WorkerHooks`). Each hook is an option, and :class:`Hooks`
holds them as one value:

- the **gate** (``gate``, a FIFO's path): holds every task in its worker, before it
  runs, until the FIFO yields one byte for it (one byte lets one task through). The
  test that holds the FIFO's write end opens the gate for good by removing the FIFO and
  then closing its end: a waiting worker sees the end of file, a new one finds no FIFO
  (:class:`support.kernel.WorkerGate` does both). A test thus decides exactly how many
  tasks run and when, whatever the machine's speed.
- the **pause gate** (``pause_gate``): holds a running kernel job at each fence until a
  byte comes or a request arrives, so a test can hold a job at a fence, take a
  checkpoint there, preempt it or kill the kernel; a byte ``s`` lets it run one
  micro-op and holds it again before the next (:class:`HeldControl`, which the hooks
  hand to :func:`~qmk.kernel.pools.attempt.run_job` as its ``control``).
- the **stall** (``stall``): a FIFO; a worker about to send a task's reply that finds a
  byte in it writes half the reply, stops itself (``SIGSTOP``) and writes the rest only
  if continued, as a worker frozen in the middle of a reply.
- the **probe** (``probe``, a module-level function): called as ``probe(fn, args,
  kwargs)`` in place of each task (after the gate), in the confined worker: a test's
  escape attempts run where a job would (:mod:`support.isolation`).

How a test puts such a pool under a kernel, the kernel itself unchanged:

- in process: :func:`support.kernel.run_kernel` (``gate=``, ``pause=``, ``hooks=``),
  which opens the kernel with ``pool_factory=hooks.factory()`` (the kernel's own wiring,
  :func:`qmk.kernel.pools.workers.kernel_pool`, with ``pool_class=GatedPool``);
- a real server: :meth:`support.kernel.ServerProcess.start` with ``hooks=`` runs
  ``python -m support.serve`` (:mod:`support.serve`): the very ``qmk serve`` code, on a
  real socket with real workers, given that pool factory;
- a Dask pool: ``DaskPool(..., job_pool=hooks)``: each Dask worker's job pool is then a
  :class:`GatedPool` (a :class:`Hooks` makes one when called, and pickles and compares
  by value, as a Dask job pool's maker must).

Everything the hooks need is imported at this module's top: a worker imports it when it
unpickles its hooks, before it confines itself.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import signal
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from qmk.kernel.pools.attempt import run_job
from qmk.kernel.pools.control import WorkerControl
from qmk.kernel.pools.pool import WorkerHooks, WorkerPool
from qmk.kernel.pools.wire import frame
from qmk.kernel.pools.worker import TaskLink
from qmk.kernel.pools.worker_line import WorkerLine
from qmk.kernel.pools.workers import PoolFactory, kernel_pool

#: A probe: called as ``probe(fn, args, kwargs)`` in place of each task.
Probe = Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]


def dict_answer(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A probe that answers a job as workers did before their outcomes were typed: a
    dict of optional keys (``ok``, ``result_json``, ...), which is no outcome now."""
    return {"ok": True, "result_json": b'{"counts":{}}', "result_meta": {}}


def packed_junk_answer(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A probe that answers a job with MessagePack bytes that are no outcome (a map
    without the tag ``kind``), as a worker's packed answer would cross."""
    return b"\x81\xa2ok\xc3"  # {"ok": true}


@dataclass(frozen=True, slots=True, kw_only=True)
class Hooks:
    """The tests' hooks of a pool's workers, each optional (see the module docstring).

    Called, it makes a :class:`GatedPool` with them (``Hooks(...)(max_workers,
    **options)``): a Dask pool's ``job_pool``.
    """

    gate: str | None = None
    pause_gate: str | None = None
    stall: str | None = None
    probe: Probe | None = None

    @property
    def any(self) -> bool:
        """Whether any hook is set."""
        return any(value is not None for value in self.options().values())

    def options(self) -> dict[str, Any]:
        """The hooks as :class:`GatedPool`'s options."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def __call__(self, max_workers: int, **options: Any) -> GatedPool:
        """A :class:`GatedPool` of ``max_workers`` with these hooks and ``options``."""
        return GatedPool(max_workers, **self.options(), **options)

    def factory(self) -> PoolFactory:
        """A kernel's pool factory (``Kernel.open(pool_factory=)``): the kernel's own
        pool, made a :class:`GatedPool` with these hooks."""
        return functools.partial(kernel_pool, pool_class=GatedPool, **self.options())

    def argv(self) -> list[str]:
        """The options of ``python -m support.serve`` that set these hooks."""
        argv: list[str] = []
        for name, value in self.options().items():
            if value is None:
                continue
            if name == "probe":
                value = f"{value.__module__}:{value.__qualname__}"
            argv += [f"--{name.replace('_', '-')}", str(value)]
        return argv

    @staticmethod
    def load_probe(name: str) -> Probe:
        """The probe named ``module:function`` (what :meth:`argv` writes)."""
        module, _, function = name.partition(":")
        probe: Probe = getattr(importlib.import_module(module), function)
        return probe


class Fifo:
    """A FIFO's read end in a worker (non-blocking); ``fd`` None when there is none (no
    path, or the test removed the FIFO or closed its end: open for good)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.fd: int | None = None

    def open(self) -> int | None:
        """Open the read end (in the worker, before it confines itself)."""
        if self.path is not None:
            try:
                self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            except FileNotFoundError:
                self.fd = None  # removed: the gate was opened for good
        return self.fd

    def close(self) -> None:
        """No FIFO any more (its writer is gone: open for good)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class HeldControl(WorkerControl):
    """A kernel job's control that also holds the run at the pause gate ``pause``.

    At each fence with no request waiting the run waits until the gate yields a byte
    or the kernel sends a request; a byte ``s`` lets one micro-op run and holds the run
    again before the next (requests then wait for the pause they come at, but a
    ``yield-now`` stops the run there), any other byte lets it go on to its next fence.
    The end of the FIFO opens the gate for good, for this worker's later jobs too.
    """

    def __init__(self, link: TaskLink, directory: str, *, every_ops: int = 0, pause: Fifo) -> None:
        super().__init__(link, directory, every_ops=every_ops)
        self.pause = pause
        #: Hold before every micro-op (a byte ``s`` came).
        self.stepping = False

    def looks(self) -> bool:
        return True if self.stepping else super().looks()

    def _pause(self) -> bool:
        """Wait at the gate: True when a byte came (or the gate opened for good),
        False when requests came (taken)."""
        while (fd := self.pause.fd) is not None:
            if self.link.wait(fd):
                try:
                    byte = os.read(fd, 1)
                except BlockingIOError:
                    continue  # another worker took the byte
                if not byte:
                    self.pause.close()
                self.stepping = byte == b"s"
                return True
            self.take(self.link.requests())
            return False
        self.stepping = False
        return True

    def at_op(self) -> str | None:
        while self.stepping and self.now is None:
            if self._pause():
                break
        if self.stepping and self.now is None:
            return None  # one micro-op more
        return super().at_op()

    def at_fence(self, epoch: int) -> str | None:
        if not self.waiting and self.now is None and self.pause.fd is not None:
            self._pause()
            if self.stepping and self.now is None:
                return None  # a step: requests wait for the pause they come at
        return super().at_fence(epoch)


class HookedWorker(WorkerHooks):
    """What a :class:`GatedPool`'s worker does around each task: :class:`Hooks`."""

    def __init__(self, hooks: Hooks) -> None:
        self.probe = hooks.probe
        self.gate = Fifo(hooks.gate)
        self.pause = Fifo(hooks.pause_gate)
        self.stall = Fifo(hooks.stall)

    def start(self) -> Iterable[int]:
        opened = (fifo.open() for fifo in (self.gate, self.pause, self.stall))
        return [fd for fd in opened if fd is not None]

    def run(
        self, link: TaskLink, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        self._pass_gate(link)
        if self.probe is not None:
            return self.probe(fn, args, kwargs)
        if fn is run_job and self.pause.fd is not None:
            kwargs = {**kwargs, "control": functools.partial(HeldControl, pause=self.pause)}
        return fn(*args, **kwargs)

    def _pass_gate(self, link: TaskLink) -> None:
        """Wait at the gate for a byte, or its end of file (open for good). Requests for
        the task that come meanwhile wait for it in ``link``."""
        fd = self.gate.fd
        if fd is None:
            return
        while True:
            if link.wait(fd):
                try:
                    os.read(fd, 1)  # one byte lets this task through; b"" all of them
                except BlockingIOError:
                    continue  # another worker took the byte
                return

    def reply(self, line: WorkerLine, message: Any) -> None:
        if not self._stalls():
            line.send(message)
            return
        header, body = frame(message)
        half = (len(header) + len(body)) // 2 - len(header)
        line.write(header)
        line.write(memoryview(body)[:half])
        os.kill(os.getpid(), signal.SIGSTOP)
        line.write(memoryview(body)[half:])

    def _stalls(self) -> bool:
        """Whether this reply stalls: a byte waits in the stall FIFO."""
        fd = self.stall.fd
        if fd is None:
            return False
        try:
            byte = os.read(fd, 1)
        except BlockingIOError:
            return False
        if not byte:
            self.stall.close()  # its writer is gone: no more stalls
            return False
        return True


class GatedPool(WorkerPool):
    """A :class:`~qmk.kernel.pools.pool.WorkerPool` whose workers run the tests' hooks.

    Args:
        max_workers: how many worker processes.
        gate, pause_gate, stall: FIFO paths (see the module docstring); a path that no
            longer exists is a gate opened for good.
        probe: a module-level function run in place of each task.
        options: the pool's own options.

    Raises:
        ValueError: a path that is not a FIFO.
    """

    def __init__(
        self,
        max_workers: int = 2,
        *,
        gate: str | os.PathLike[str] | None = None,
        pause_gate: str | os.PathLike[str] | None = None,
        stall: str | os.PathLike[str] | None = None,
        probe: Probe | None = None,
        **options: Any,
    ) -> None:
        paths = {"gate": gate, "pause_gate": pause_gate, "stall": stall}
        for name, path in paths.items():
            if (
                path is not None
                and os.path.exists(path)
                and not stat.S_ISFIFO(os.stat(path).st_mode)
            ):
                raise ValueError(f"the {name} {os.fspath(path)!r} is not a FIFO")
        named = {name: None if path is None else os.fspath(path) for name, path in paths.items()}
        self.test_hooks = Hooks(probe=probe, **named)
        super().__init__(max_workers, hooks=HookedWorker(self.test_hooks), **options)


__all__ = ["Fifo", "GatedPool", "HeldControl", "HookedWorker", "Hooks", "Probe"]
