"""The Dask bridge: a user-mode server that runs the kernel's jobs on a Dask cluster.

The bridge is the kernel's worker capacity on Dask, in a process of its own (``qmk
dask-bridge``, started and restarted by ``qmk serve --dask``, or alone in a container of
its own). It holds the Dask client, and a ``local:N`` cluster, in a
:class:`~qmk.kernel.pools.dask_pool.DaskPool` on its own loop, so the kernel's process
never loads ``distributed``, ``tornado`` or ``dask``. It listens on a Unix socket; the
kernel connects as a :class:`~qmk.kernel.pools.remote.RemotePool` and hands it tasks
over the worker wire (:mod:`qmk.kernel.pools.wire`). The bridge serves one kernel line
at a time: when the line ends it kills what it ran for it and takes the next.

What the kernel sends (pickles; the bridge serves the kernel, whom it trusts as a
worker trusts its pool): ``("run", id, fn, args, kwargs, state)`` (``state``: the bytes
of the state file its argument resumes from, or None), ``("kill", id, reason)``,
``("request", id, payload)``, ``("queue", 0, (queued, out))``. What it answers:
``(0, "hello", status)`` once it serves the line, ``(0, "status", status)`` when its
capacity changes, and per task ``(id, "note", note)``, ``(id, "ok", value)`` or ``(id,
"failed", (kind, message, data))``, all plain data (the kernel unpickles nothing else).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from qmk.kernel.pools.pool import TaskError
from qmk.kernel.pools.wire import PoolLine

_log = logging.getLogger("qmk.kernel.dask")

#: How often the bridge looks at its pool's capacity and workers (sent on a change).
STATUS_S = 1.0


class Bridge:
    """Serves kernel lines with ``pool`` (a Dask pool driven by this loop), one at a time.

    Args:
        pool: what runs the tasks: ``submit``, ``cancel``, ``listen``, ``request``,
            ``max_workers``, ``known_workers``, ``lost_workers``, ``watch_queue``.
        address: what the bridge says it runs on (its scheduler), in its hello.
    """

    def __init__(self, pool: Any, address: str) -> None:
        self.pool = pool
        self.address = address
        self.lines = 0
        self._depth: tuple[int, int] = (0, 0)
        self._capacity: Callable[[int], None] | None = None
        pool.watch_queue(lambda: self._depth, self._resized)

    def _resized(self, workers: int) -> None:
        if self._capacity is not None:
            self._capacity(workers)

    def status(self) -> dict[str, Any]:
        """What the kernel hears of the bridge: its capacity and workers."""
        return {
            "max_workers": int(self.pool.max_workers),
            "known_workers": int(self.pool.known_workers),
            "lost_workers": int(self.pool.lost_workers),
            "pid": os.getpid(),
            "dask": self.address,
        }

    async def serve(self, listening: Any, stop: asyncio.Event) -> None:
        """Take kernel lines on ``listening`` until ``stop``."""
        loop = asyncio.get_running_loop()
        listening.setblocking(False)
        while not stop.is_set():
            accepting = asyncio.ensure_future(loop.sock_accept(listening))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait([accepting, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not accepting.done():
                accepting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await accepting
                return
            conn, _ = accepting.result()
            self.lines += 1
            await _Line(self, conn, loop).run(stop)


class _Line:
    """One kernel's line: its tasks on the pool, their answers back."""

    def __init__(self, bridge: Bridge, conn: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.bridge = bridge
        self.loop = loop
        fd = os.dup(conn.fileno())
        conn.close()
        self.line = PoolLine(fd, None)
        self.futures: dict[int, Future[Any]] = {}
        self.ended = asyncio.Event()
        self._writing = False
        self._told: dict[str, Any] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        bridge = self.bridge
        bridge._capacity = lambda _: self._tell()
        self.loop.add_reader(self.line.fd, self._on_readable)
        self._told = bridge.status()
        self._send((0, "hello", self._told))
        timer = asyncio.ensure_future(self._watch_status())
        ending = asyncio.ensure_future(self.ended.wait())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([ending, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (timer, ending, stopping):
                task.cancel()
            bridge._capacity = None
            self._close()

    async def _watch_status(self) -> None:
        while True:
            await asyncio.sleep(STATUS_S)
            self._tell()

    def _tell(self) -> None:
        status = self.bridge.status()
        if status != self._told:
            self._told = status
            self._send((0, "status", status))

    def _close(self) -> None:
        """The line ended: kill what runs for it on the cluster, close it."""
        with contextlib.suppress(ValueError, RuntimeError):
            self.loop.remove_reader(self.line.fd)
            if self._writing:
                self.loop.remove_writer(self.line.fd)
        futures, self.futures = self.futures, {}
        for future in futures.values():
            self.bridge.pool.cancel(future, "the kernel's line to the bridge closed")
        self.line.close()

    def _send(self, message: Any) -> None:
        if self.line.fd < 0:
            return
        try:
            done = self.line.send(message)
        except OSError:
            self.ended.set()
            return
        if not done and not self._writing:
            self.loop.add_writer(self.line.fd, self._on_writable)
            self._writing = True

    def _on_writable(self) -> None:
        try:
            done = self.line.flush()
        except OSError:
            self.ended.set()
            return
        if done and self._writing:
            self.loop.remove_writer(self.line.fd)
            self._writing = False

    def _on_readable(self) -> None:
        try:
            bodies, eof = self.line.receive()
        except Exception:
            self.ended.set()
            return
        for body in bodies:
            self._take(pickle.loads(body))
        if eof:
            self.ended.set()

    def _take(self, message: Any) -> None:
        verb, task_id = message[0], message[1]
        pool = self.bridge.pool
        if verb == "run":
            _, _, fn, args, kwargs, state = message
            resume = getattr(args[0], "resume", None) if args else None
            if state is not None and isinstance(resume, str):
                pool.jobs.keep_state(resume, state)
            try:
                future = pool.submit(fn, *args, **kwargs)
            except Exception as exc:
                self._send((task_id, "failed", ("error", f"the bridge refused it: {exc}", {})))
                return
            self.futures[task_id] = future
            pool.listen(future, lambda note: self._soon(self._send, (task_id, "note", note)))
            future.add_done_callback(lambda done: self._soon(self._answer, task_id, done))
        elif verb == "kill":
            future = self.futures.pop(task_id, None)
            if future is not None:
                pool.cancel(future, str(message[2]))
        elif verb == "request":
            future = self.futures.get(task_id)
            if future is not None:
                pool.request(future, message[2])
        elif verb == "queue":
            self.bridge._depth = tuple(message[2])

    def _soon(self, call: Callable[..., None], *args: Any) -> None:
        """Run ``call`` on the bridge's loop (a pool's callback may come from a thread)."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(call, *args)

    def _answer(self, task_id: int, future: Future[Any]) -> None:
        if self.futures.get(task_id) is not future:
            return  # killed by the kernel, or of a line that ended
        del self.futures[task_id]
        try:
            value = future.result()
        except TaskError as exc:
            self._send((task_id, "failed", (exc.kind, exc.message, _plain(exc.data))))
            return
        except BaseException as exc:
            self._send((task_id, "failed", ("error", f"{type(exc).__name__}: {exc}", {})))
            return
        self._send((task_id, "ok", value))


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as the kernel can read it (plain values; others as their text)."""
    plain: dict[str, Any] = {}
    for key, value in data.items():
        ok = value is None or isinstance(value, (bool, int, float, str, bytes, dict, list))
        plain[str(key)] = value if ok else str(value)
    return plain


__all__ = ["STATUS_S", "Bridge"]
