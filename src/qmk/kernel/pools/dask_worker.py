"""On a Dask worker: the handlers through which a QMK kernel runs its jobs there.

The kernel's :class:`~qmk.kernel.pools.dask_pool.DaskPool` registers :class:`JobsPlugin` with
the scheduler, which installs it on every worker of the cluster, those that join later
included. The plugin adds seven handlers to the worker's own server (Dask's comm, with
its TLS), which the kernel calls straight, one round trip each, without the scheduler:

- ``qmk_run``: run one job (or one part of a split job) in a child process of this
  worker's job pool, and answer with its end, a typed
  :data:`~qmk.kernel.pools.dask_protocol.Answer`;
- ``qmk_kill``: SIGKILL the job processes of some tokens, and remember the tokens, so
  a run that comes after its kill runs nothing;
- ``qmk_request``: pass a checkpoint or preemption request to a running job;
- ``qmk_hello``: this worker's pid and threads (the kernel calls it before it sends jobs);
- ``qmk_warm``: start the job pool a run would start, before any run (a spare bridge's
  cluster stands by ready to run);
- ``qmk_put`` and ``qmk_fetch``: a split job's big spec, put on one worker by the kernel
  and fetched from there by the workers of its other parts, so it leaves the kernel once.

A job does not run in the Dask worker's process: it goes to a
:class:`~qmk.kernel.pools.pool.WorkerPool` of the worker's own (one per set of kernel
limits, as many processes as the worker has threads; or what the kernel's ``job_pool``
makes), whose confined children hold the kernel's memory and CPU caps and can be killed
for real. The pool is made at the worker's first job and kept: its processes are started
once.

Checkpoint notes (a job saved its state) go to the kernel as Dask events on
:data:`~qmk.kernel.pools.dask_protocol.NOTES_TOPIC`, with the state's bytes; the answer says how
many notes the job sent, so the kernel takes the notes before the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import pickle
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin
from msgspec.structs import replace

from qmk.execution.checkpoint import private_dirs
from qmk.kernel.datafiles import STATE_SUFFIX
from qmk.kernel.pools.attempt import Attempt
from qmk.kernel.pools.dask_protocol import (
    HANDLERS,
    NOTES_TOPIC,
    PLUGIN,
    Again,
    Answer,
    Lost,
    Raised,
    Returned,
    Stash,
)
from qmk.kernel.pools.pool import TaskError

#: What a daemonic Dask worker answers (it may start no job processes).
DAEMONIC = (
    "the Dask worker is a daemonic process and cannot start job processes: run it with "
    "DASK_DISTRIBUTED__WORKER__DAEMON=False (docs/scale-out.md)"
)


@dataclass(eq=False)
class _Host:
    """A job pool of this worker process (one per set of kernel limits) and its jobs."""

    pool: Any
    root: str
    running: dict[str, Future[Any]] = field(default_factory=dict)


_HOSTS: dict[tuple[Any, ...], _Host] = {}
_HOSTS_LOCK = threading.Lock()
#: Tokens killed (token -> why), remembered so a run that comes late runs nothing.
_CANCELLED: OrderedDict[str, str] = OrderedDict()
_CANCELLED_KEPT = 4096
#: Split jobs' specs put here for their parts (digest -> pickled spec), the last few.
_STASH: OrderedDict[str, bytes] = OrderedDict()
_STASH_KEPT = 8
#: Requests that came before their job (token -> payloads), kept this many.
_EARLY: OrderedDict[str, list[Any]] = OrderedDict()
_EARLY_KEPT = 4096
#: Requests waiting for their queued job to reach its process (owned here till then).
_DELIVERING: set[asyncio.Task[None]] = set()
#: Set when the worker closes (its plugin's teardown): the jobs it kills are lost, not
#: failed, and the kernel starts them again elsewhere.
_CLOSING = threading.Event()


def _key(options: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, v) for k, v in options.items() if k != "checkpoints"))


def _host(options: Mapping[str, Any], threads: int, loop: asyncio.AbstractEventLoop) -> _Host:
    """This process's job pool for ``options``, driven by ``loop`` (the worker's; call
    this on its thread): made at its first job, after :func:`_warm_forkserver`; a pool
    of other limits that runs nothing is retired."""
    from qmk.kernel.pools.pool import WorkerPool
    from qmk.kernel.pools.sandbox import Isolation, owned_temp_dir
    from qmk.kernel.pools.workers import DEFAULT_PRELOAD

    key = _key(options)
    with _HOSTS_LOCK:
        host = _HOSTS.get(key)
        if host is not None:
            return host
        for old_key, old in list(_HOSTS.items()):
            if not old.running:
                old.pool.shutdown(False, cancel_futures=True)
                del _HOSTS[old_key]
        root = owned_temp_dir("qmk-dask-")
        make = options.get("job_pool") or WorkerPool  # the kernel's DaskPool(job_pool=)
        pool = make(
            max(threads, 1),
            memory_mb=options.get("memory_mb"),
            preload=DEFAULT_PRELOAD,
            isolation=Isolation(
                cpu_s=options.get("cpu_s"),
                file_mb=options.get("file_mb") or options.get("memory_mb"),
                writable=(root,),
            ),
            loop=loop,
        )
        host = _HOSTS[key] = _Host(pool=pool, root=root)
        return host


def _warm_forkserver() -> None:
    """Start this process's forkserver, its preloads imported (about a second), in the
    calling thread: the job pool's first process start, on the worker's event loop,
    then finds it ready instead of waiting for it there."""
    from qmk.kernel.pools.workers import DEFAULT_PRELOAD

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(DEFAULT_PRELOAD))
    process = context.Process(target=os.getpid, name="qmk-forkserver-warm", daemon=True)
    process.start()
    process.join()


def _trim(table: OrderedDict[str, Any], kept: int) -> None:
    """Forget the oldest entries of ``table`` past ``kept``."""
    while len(table) > kept:
        table.popitem(last=False)


def _died(message: str) -> Raised:
    """The answer of a job that failed here for a reason not its own."""
    return Raised(kind="died", message=message)


def _retire_hosts() -> None:
    """Stop every job pool of this process (the worker is closing): their processes
    are killed, not waited for."""
    with _HOSTS_LOCK:
        hosts = list(_HOSTS.values())
        _HOSTS.clear()
    for host in hosts:
        with contextlib.suppress(Exception):
            host.pool.shutdown(False, cancel_futures=True)
        shutil.rmtree(host.root, ignore_errors=True)


def _deliver(host: _Host, future: Future[Any], payload: Any) -> None:
    """Pass ``payload`` to the job of ``future``: now if it runs in its process, else
    once it does (a job queued in the pool takes no requests yet)."""
    if future.running() and host.pool.request(future, payload):
        return
    if future.done():
        return
    task = asyncio.get_running_loop().create_task(_deliver_later(host, future, payload))
    _DELIVERING.add(task)
    task.add_done_callback(_DELIVERING.discard)


async def _deliver_later(host: _Host, future: Future[Any], payload: Any) -> None:
    pause = 0.0001  # a queued job reaches a process as one ahead of it ends
    while not future.done():
        if future.running():
            host.pool.request(future, payload)
            return
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.005)


async def _send_note(
    worker: Any, token: str, note: Any, previous: asyncio.Task[None] | None
) -> None:
    """Send a job's note to the kernel (a Dask event), with the state it names read in
    a thread (a big one would hold the worker's loop), after the note before it."""
    if previous is not None:
        with contextlib.suppress(Exception):
            await previous
    data = None
    if isinstance(note, dict) and note.get("path"):
        with contextlib.suppress(OSError):
            data = await asyncio.to_thread(Path(str(note["path"])).read_bytes)
    worker.log_event(NOTES_TOPIC, {"token": token, "note": note, "data": data})


def _kill(tokens: list[str], reason: str) -> int:
    """SIGKILL the jobs of ``tokens`` here and remember the tokens; how many ran here."""
    killed = 0
    with _HOSTS_LOCK:
        for token in tokens:
            _CANCELLED[token] = reason
            for host in _HOSTS.values():
                future = host.running.get(token)
                if future is not None and host.pool.cancel(future, reason):
                    killed += 1
        _trim(_CANCELLED, _CANCELLED_KEPT)
    return killed


class JobService:
    """The handlers of one Dask worker (see the module docstring)."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker

    async def hello(self) -> dict[str, Any]:
        """This worker's pid and how many jobs it runs at once."""
        return {"pid": os.getpid(), "threads": int(self.worker.state.nthreads)}

    async def run(self, call: bytes) -> bytes:
        """Run a job: ``call`` is the pickled ``(token, fn, spec, part, resume, options,
        requests)`` of :meth:`qmk.kernel.pools.dask_pool.DaskPool` (one blob: Dask's comm
        carries bytes as they are, where its per-object serializers cost more than a
        small job). ``fn(spec)`` runs in a child process of this worker's job pool.

        Answers the pickled :data:`~qmk.kernel.pools.dask_protocol.Answer`: ``Returned``
        (its value), ``Raised`` (its process failed), ``Lost`` when the worker closes
        under the job, or ``Again`` when the spec could not be fetched from its peer,
        each with how many checkpoint notes the job sent; never an exception, so every
        failure reaches the kernel as an answer.
        """
        answer: Answer
        try:
            answer = await self._run(*pickle.loads(call))
        except Exception as exc:  # our own failure here (a file, the pool): the job's
            answer = _died(f"{type(exc).__name__}: {exc}")
        try:
            return pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # a value that does not pickle
            return pickle.dumps(_died(f"the job's value does not pickle: {exc!r}"))

    async def _run(
        self,
        token: str,
        fn: Callable[..., Any],
        spec: Any,
        part: list[int] | None,
        resume: bytes | None,
        options: Mapping[str, Any],
        requests: list[Any] | None,
    ) -> Answer:
        if multiprocessing.current_process().daemon:
            return _died(DAEMONIC)
        if isinstance(spec, Stash):  # a split job's big spec: here, or at a peer
            try:
                spec = await self._unstash(spec)
            except (OSError, TimeoutError, asyncio.TimeoutError, LookupError) as exc:
                return Again(why=f"cannot fetch the job's program from {spec.address}: {exc!r}")
        loop = asyncio.get_running_loop()
        host = await self._pool_of(options)
        with _HOSTS_LOCK:
            why = _CANCELLED.get(token)
        if why is not None:
            return Raised(kind="killed", message=why)
        if resume is None:
            local, folder = _place(host, token, spec, part, None, options)
        else:  # the state it resumes from is written here first
            local, folder = await asyncio.to_thread(
                _place, host, token, spec, part, resume, options
            )
        sends: list[asyncio.Task[None]] = []  # the notes, each sent after the one before

        def noted(note: Any) -> None:  # on the worker's loop, which drives the job pool
            previous = sends[-1] if sends else None
            sends.append(loop.create_task(_send_note(self.worker, token, note, previous)))

        future = host.pool.submit(fn, local)
        host.pool.listen(future, noted)
        with _HOSTS_LOCK:
            host.running[token] = future
            early = _EARLY.pop(token, [])
            why = _CANCELLED.get(token)
        if why is not None:  # killed while it started
            host.pool.cancel(future, why)
        for payload in (*(requests or ()), *early):
            _deliver(host, future, payload)
        answer: Answer
        try:
            answer = Returned(value=await asyncio.wrap_future(future))
        except TaskError as exc:
            if _CLOSING.is_set():  # not the job's doing: its worker is going away
                answer = Lost(why="its Dask worker closed")
            else:
                answer = Raised(kind=exc.kind, message=exc.message, data=dict(exc.data))
        finally:
            host.running.pop(token, None)
            if sends:  # sent before the outcome, their states read before the folder goes
                await asyncio.gather(*sends, return_exceptions=True)
            if folder is not None and os.path.isdir(folder):  # it saved states, or resumed
                await asyncio.to_thread(shutil.rmtree, folder, True)
        return replace(answer, notes=len(sends))

    async def _pool_of(self, options: Mapping[str, Any]) -> _Host:
        """The job pool of ``options``; the first job here (or a warm-up) starts it."""
        host = _HOSTS.get(_key(options))
        if host is None:
            await asyncio.to_thread(_warm_forkserver)
            host = _host(options, int(self.worker.state.nthreads), asyncio.get_running_loop())
        return host

    async def warm(self, options: bytes) -> int:
        """Start the job pool of ``options`` (pickled, as a run's) and have each of its
        processes answer once; how many did. Its first job then starts no process."""
        host = await self._pool_of(pickle.loads(options))
        calls = [host.pool.submit(os.getpid) for _ in range(int(self.worker.state.nthreads))]
        return len(set(await asyncio.gather(*map(asyncio.wrap_future, calls))))

    async def put(self, digest: str, data: bytes) -> bool:
        """Keep a split job's pickled spec for its parts (here and at peers)."""
        _STASH[digest] = data
        _STASH.move_to_end(digest)
        _trim(_STASH, _STASH_KEPT)
        return True

    async def fetch(self, digest: str) -> bytes | None:
        """A spec kept here (a peer runs a part of its job), or None."""
        return _STASH.get(digest)

    async def _unstash(self, stash: Stash) -> Any:
        """The spec of ``stash``: kept here, or fetched once from the worker that holds
        it (worker to worker, over Dask's comm)."""
        data = _STASH.get(stash.digest)
        if data is None:
            call = self.worker.rpc(stash.address).qmk_fetch(digest=stash.digest)
            data = await asyncio.wait_for(call, 60)
            if not isinstance(data, bytes):
                raise LookupError(f"{stash.address} no longer holds it")
            await self.put(stash.digest, data)
        return pickle.loads(data)

    async def kill(self, tokens: list[str], reason: str) -> int:
        """SIGKILL the jobs of ``tokens`` (the kill never waits); how many ran here."""
        return _kill(tokens, reason)

    async def request(self, token: str, payload: bytes) -> bool:
        """Pass the pickled ``payload`` to the job ``token`` (its fence reads it); False
        when it has not come here (yet): the request waits for it."""
        request = pickle.loads(payload)
        with _HOSTS_LOCK:
            for host in _HOSTS.values():
                future = host.running.get(token)
                if future is not None:
                    break
            else:
                _EARLY.setdefault(token, []).append(request)
                _trim(_EARLY, _EARLY_KEPT)
                return False
        _deliver(host, future, request)
        return True


def _place(
    host: _Host,
    token: str,
    attempt: Any,
    part: list[int] | None,
    resume: bytes | None,
    options: Mapping[str, Any],
) -> tuple[Any, str | None]:
    """The job's attempt as it runs here: its part, its checkpoints in a folder of this
    worker (the kernel takes them from the notes; the job makes the folder when it
    saves), the state it resumes from written there; and that folder (None: none)."""
    if not isinstance(attempt, Attempt):
        return attempt, None
    folder = None
    request = attempt.request
    if part is not None:
        request = replace(request, part=(int(part[0]), int(part[1])))
    job_dir = attempt.checkpoint_dir
    saves = None
    if job_dir is not None and options.get("checkpoints"):
        folder = saves = os.path.join(host.root, f"{token}-{Path(job_dir).name}")
    path = None
    if resume is not None:
        folder = folder or os.path.join(host.root, token)
        private_dirs(folder)
        path = os.path.join(folder, f"resume{STATE_SUFFIX}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(resume)
    return replace(attempt, request=request, checkpoint_dir=saves, resume=path), folder


class JobsPlugin(WorkerPlugin):
    """Installs :class:`JobService`'s handlers on each worker (idempotent: kernels that
    share a cluster share them; each call carries its kernel's limits)."""

    idempotent = True
    name = PLUGIN

    def setup(self, worker: Any) -> None:
        service = JobService(worker)
        for op, method in HANDLERS.items():
            worker.handlers[op] = getattr(service, method)

    def teardown(self, worker: Any) -> None:
        _CLOSING.set()
        for op in HANDLERS:
            worker.handlers.pop(op, None)
        _retire_hosts()


# --------------------------------------------------------------------------- Client.run


def truncate_notes(dask_scheduler: Any) -> None:
    """On the scheduler: forget the notes it passed on (its event log keeps the last
    100,000 events of a topic, checkpoint states included)."""
    broker = getattr(dask_scheduler, "_broker", None)
    if broker is not None:
        broker.truncate(NOTES_TOPIC)


def job_pids() -> list[int]:
    """On every worker: the pids of its job processes (tests kill them)."""
    return [pid for host in _HOSTS.values() for pid in host.pool.pids]


def holding() -> tuple[int, int]:
    """On every worker: its pid, and how many jobs it runs now."""
    return os.getpid(), sum(len(host.running) for host in _HOSTS.values())


__all__ = ["DAEMONIC", "JobService", "JobsPlugin", "holding", "job_pids", "truncate_notes"]
