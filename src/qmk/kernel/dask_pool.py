"""The kernel's worker pool on a Dask cluster (dask.distributed): past one machine.

:class:`DaskPool` offers what the supervisor asks of a pool (``submit``, ``cancel``,
``shutdown``, ``max_workers``; ``listen`` and ``request`` for checkpoints and preemption
at fences), so ``Kernel.open(pool=DaskPool(...))`` (``qmk serve --dask``) runs jobs on
Dask workers. The kernel stays the one source of truth: the database, the audit log and
the checkpoints live in its data directory; Dask workers hold nothing between tasks.

**Real kill, real limits.** Dask cannot stop a task that runs. So a Dask task does not
run the job itself: it hands it to a :class:`~qmk.kernel.workers.WorkerPool` of the Dask
worker's own (one per worker process, as many workers as the Dask worker has threads),
whose confined child processes hold the kernel's memory and CPU caps. Cancel, timeout,
deadline and preemption reach the child through ``Client.run`` on the workers
(:func:`_kill`): it is SIGKILLed at once, as in the local pool, and the kernel's future
fails with :class:`~qmk.kernel.workers.WorkerKilled` without waiting for the cluster.

**Faults.** A Dask worker that dies mid-job (the cluster runs with
``distributed.scheduler.allowed-failures = 0``, so Dask reports it instead of running
the task again on its own) has its job started again on another worker by this pool,
from the job's latest checkpoint if it saved one, else from its start; the job's one
result is the one the kernel sees (a Dask future completes once, and the pool takes
the result of its current attempt only). When the scheduler goes away the jobs that
were out wait in the pool (the kernel shows them RUNNING, their timeouts running) and
the jobs not started wait in the kernel's queue; once a scheduler answers at the same
address, the pool sends them again.

**Big jobs split.** A job of at least ``split_shots`` shots goes out as parts
(:mod:`qmk.execution.parts`: part ``k`` of ``n`` runs its even share of the shot groups),
one per Dask worker, their counts merged: the same counts as one run, bit for bit. A
split job takes no checkpoints (its parts are short-lived and start again whole).

**One trip back.** A task's outcome of at most :data:`PUSH_BYTES` comes back in a note
(a Dask event, as checkpoint notes do) with the task's end: the kernel does not fetch it
from the worker, a round trip that cost small jobs a third of their time. A bigger one
is fetched. The pool clears its notes from the scheduler's event log as it goes.

**Data locality.** A split job's spec (its graph) is scattered once to the cluster and
shared by its parts; a big graph (over :data:`SCATTER_BYTES`) is scattered too. Results
are counts and telemetry, never rows of shots. Checkpoint states travel once: a worker
sends a state it saved with the note that reports it (a Dask event); the pool writes it
into the kernel's data directory, and a job restarted elsewhere takes its state with it.

Test hooks: the local pool's gate and pause gate (``gate=``, ``pause_gate=``, FIFOs on
the one machine of a ``LocalCluster``) hold jobs in the Dask workers' children exactly as
in the local pool (:mod:`qmk.kernel.workers`).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
import queue
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qmk.errors import UnavailableError
from qmk.kernel.errors import ConfigError
from qmk.kernel.workers import (
    TaskError,
    WorkerCpuLimit,
    WorkerDied,
    WorkerKilled,
    WorkerMemoryError,
)

_log = logging.getLogger("qmk.kernel.dask")

#: The Dask event topic of checkpoint notes (worker -> kernel).
NOTES_TOPIC = "qmk-notes"
#: A job with at least this many shots is split over the workers (0: never).
SPLIT_SHOTS = 100_000
#: A spec longer than this (its graph, in bytes of text) is scattered, not inlined.
SCATTER_BYTES = 1 << 20
#: An outcome at most this long (msgpack bytes) reaches the kernel in a note, not fetched.
PUSH_BYTES = 64 << 10
#: The pool clears its notes from the scheduler's event log after this many.
NOTES_KEPT = 256
#: How long the kernel's Dask client may hold a message to batch it with the next ones.
SEND_EVERY_S = 0.001
#: How many times a job is started again after its Dask worker died.
MAX_RESTARTS = 3
#: What a ``LocalCluster`` (``local:N``) and the docs' ``dask scheduler`` need.
CLUSTER_CONFIG: dict[str, Any] = {
    # a dead worker's task comes back to the kernel, which starts it from its checkpoint
    "distributed.scheduler.allowed-failures": 0,
    # the Dask worker's own job processes (a daemonic process may have no children)
    "distributed.worker.daemon": False,
}


# --------------------------------------------------------------------------- on the worker


@dataclass(eq=False)
class _Host:
    """A Dask worker process's job pool and what runs in it."""

    pool: Any
    root: str
    running: dict[str, Future[Any]] = field(default_factory=dict)


_HOSTS: dict[tuple[Any, ...], _Host] = {}
_HOSTS_LOCK = threading.Lock()
#: Tokens killed (token -> why), remembered so a task that starts late runs nothing.
_CANCELLED: OrderedDict[str, str] = OrderedDict()
_CANCELLED_KEPT = 4096
#: Requests that came before their job ran here (token -> payloads), kept this many.
_EARLY: OrderedDict[str, list[Any]] = OrderedDict()
_EARLY_KEPT = 4096


def _host(options: Mapping[str, Any], threads: int) -> _Host:
    """This process's pool for ``options`` (made at its first task)."""
    from qmk.kernel.sandbox import Isolation
    from qmk.kernel.workers import WorkerPool

    key = tuple(sorted((k, v) for k, v in options.items() if k != "checkpoints"))
    with _HOSTS_LOCK:
        host = _HOSTS.get(key)
        if host is not None:
            return host
        for old_key, old in list(_HOSTS.items()):  # another kernel's options: retire it
            if not old.running:
                old.pool.shutdown(False, cancel_futures=True)
                del _HOSTS[old_key]
        root = tempfile.mkdtemp(prefix="qmk-dask-")
        pool = WorkerPool(
            max(threads, 1),
            memory_mb=options.get("memory_mb"),
            isolation=Isolation(
                cpu_s=options.get("cpu_s"),
                file_mb=options.get("file_mb") or options.get("memory_mb"),
                writable=(root,),
            ),
            gate=_fifo(options.get("gate")),
            pause_gate=_fifo(options.get("pause_gate")),
        )
        host = _HOSTS[key] = _Host(pool=pool, root=root)
        return host


def _fifo(path: str | None) -> str | None:
    """A test gate's path, or None once it is gone (the test opened it for good)."""
    return path if path is not None and os.path.exists(path) else None


def _run_task(
    token: str,
    fn: Callable[..., Any],
    spec: Any,
    part: list[int] | None,
    resume: bytes | None,
    options: Mapping[str, Any],
) -> tuple[Any, ...]:
    """A Dask task: run ``fn(spec)`` in a child process of this worker's job pool.

    Returns ``("ok", value, notes)`` or ``("error", kind, message, data, notes)``
    (``notes``: how many checkpoint notes the task sent before it ended).
    """
    from distributed import get_worker

    if multiprocessing.current_process().daemon:
        return (
            "error",
            "died",
            "the Dask worker is a daemonic process and cannot start job processes: run "
            "it with DASK_DISTRIBUTED__WORKER__DAEMON=False (docs/scale-out.md)",
            {},
            0,
        )
    worker = get_worker()
    host = _host(options, int(getattr(worker, "nthreads", 1)))
    if token in _CANCELLED:
        return ("error", "killed", _CANCELLED[token], {}, 0)
    local = dict(spec) if isinstance(spec, Mapping) else spec
    folder = None
    if isinstance(local, dict):
        if part is not None:
            local["part"] = part
        job_dir = local.get("checkpoint_dir")
        if job_dir is not None and options.get("checkpoints"):
            folder = os.path.join(host.root, f"{token}-{Path(job_dir).name}")
            os.makedirs(folder, exist_ok=True)
            local["checkpoint_dir"] = folder
        else:
            local["checkpoint_dir"] = None
        local["resume"] = None
        if resume is not None:
            folder = folder or os.path.join(host.root, token)
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, "resume.qmkstate")
            Path(path).write_bytes(resume)
            local["resume"] = path
    sent = 0

    def noted(note: Any) -> None:  # the job pool's thread: ship the state with the note
        nonlocal sent
        data = None
        if isinstance(note, dict) and note.get("path"):
            with contextlib.suppress(OSError):
                data = Path(str(note["path"])).read_bytes()
        sent += 1
        message = {"token": token, "note": note, "data": data}
        worker.loop.add_callback(worker.log_event, NOTES_TOPIC, message)

    future = host.pool.submit(fn, local)
    host.pool.listen(future, noted)
    pause = 0.0001  # the pool's thread hands it to a process within ~0.1 ms: look again
    while not (future.running() or future.done()):  # in its process: requests reach it
        time.sleep(pause)
        pause = min(pause * 2, 0.005)
    with _HOSTS_LOCK:
        host.running[token] = future
        early = _EARLY.pop(token, [])
        if token in _CANCELLED:  # killed while it started
            host.pool.cancel(future, _CANCELLED[token])
    for payload in early:
        host.pool.request(future, payload)
    outcome: tuple[Any, ...]
    try:
        outcome = ("ok", future.result(), sent)
    except TaskError as exc:
        outcome = ("error", exc.kind, exc.message, exc.data, sent)
    except Exception as exc:  # the pool's own failure (shut down under it)
        outcome = ("error", "died", f"{type(exc).__name__}: {exc}", {}, sent)
    finally:
        host.running.pop(token, None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    _push(worker, token, outcome)
    return outcome


def _push(worker: Any, token: str, outcome: tuple[Any, ...]) -> None:
    """Send a small outcome to the kernel at once, as a note: it reaches the kernel
    with the task's end, where fetching the task's value would take one more round
    trip (the value stays the task's too: the kernel fetches it if no note came)."""
    import msgpack

    try:
        size = len(msgpack.packb(outcome, use_bin_type=True))
    except (TypeError, ValueError, OverflowError):
        return  # not plain data (the kernel fetches the value, pickled)
    if size <= PUSH_BYTES:  # log_event checks here, and sends from the worker's loop
        with contextlib.suppress(TypeError):  # a key that is no string: fetched
            worker.log_event(NOTES_TOPIC, {"token": token, "outcome": outcome})


async def _kill(tokens: list[str], reason: str) -> int:
    """On every worker (``Client.run``, on its event loop; the kill never waits): SIGKILL
    the jobs of ``tokens``; how many ran here."""
    killed = 0
    with _HOSTS_LOCK:
        for token in tokens:
            _CANCELLED[token] = reason
            for host in _HOSTS.values():
                future = host.running.get(token)
                if future is not None and host.pool.cancel(future, reason):
                    killed += 1
        while len(_CANCELLED) > _CANCELLED_KEPT:
            _CANCELLED.popitem(last=False)
    return killed


async def _request(token: str, payload: Any) -> bool:
    """On every worker: pass ``payload`` to the running job ``token`` (its fence reads it;
    the request never waits)."""
    with _HOSTS_LOCK:
        for host in _HOSTS.values():
            future = host.running.get(token)
            if future is not None:
                return bool(host.pool.request(future, payload))
        _EARLY.setdefault(token, []).append(payload)  # it has not started here (yet)
        while len(_EARLY) > _EARLY_KEPT:
            _EARLY.popitem(last=False)
    return False


def _truncate_notes(dask_scheduler: Any) -> None:
    """On the scheduler: forget the notes it passed on (its event log keeps the last
    100,000 events of a topic, states and outcomes included)."""
    broker = getattr(dask_scheduler, "_broker", None)
    if broker is not None:
        broker.truncate(NOTES_TOPIC)


def _job_pids() -> list[int]:
    """On every worker: the pids of its job processes (tests kill them)."""
    return [pid for host in _HOSTS.values() for pid in host.pool.pids]


def _holding() -> tuple[int, int]:
    """On every worker: its pid, and how many jobs it runs now."""
    return os.getpid(), sum(len(host.running) for host in _HOSTS.values())


# --------------------------------------------------------------------------- in the kernel


@dataclass(eq=False)
class _Launch:
    """One Dask task of a job (a part of it, or all of it): one attempt."""

    token: str
    part: int | None
    dask: Any = None
    notes: int = 0  # notes received


@dataclass(eq=False)
class _Job:
    future: Future[Any]
    fn: Callable[..., Any]
    spec: Any
    parts: int  # 0: not split
    listener: Callable[[Any], None] | None = None
    launches: dict[str, _Launch] = field(default_factory=dict)
    results: dict[int, Any] = field(default_factory=dict)
    spans: list[Any] = field(default_factory=list)  # the parts' worker spans (traced jobs)
    latest: str | None = None  # the kernel's file of its latest saved state
    restarts: int = 0
    data: Any = None  # the scattered spec
    waiting: dict[str, tuple[Any, int]] = field(default_factory=dict)  # outcomes short of notes


class DaskPool(Executor):
    """Runs the kernel's jobs on a Dask cluster (see the module docstring).

    Args:
        address: the scheduler (``tcp://host:8786``, ``tls://...``) or a
            ``distributed`` cluster object (a ``LocalCluster``) the pool then owns.
        max_workers: how many jobs the kernel runs at once (None: the cluster's
            worker threads when the pool connects).
        memory_mb, cpu_s, file_mb: the limits of each job's process on the workers (the
            kernel's ``worker_memory_mb``, ``worker_cpu_s``, ``worker_file_mb``).
        split_shots: split jobs of at least this many shots over the workers (0: never).
        security: a ``distributed.security.Security`` (TLS) for the scheduler's wire.
        connect_s: how long to try the scheduler at the start.
        gate, pause_gate: the test hooks of the workers' job pools (FIFO paths).

    Raises:
        UnavailableError: the scheduler does not answer within ``connect_s`` (a
            one-line error from ``qmk serve``).
    """

    def __init__(
        self,
        address: Any,
        *,
        max_workers: int | None = None,
        memory_mb: int | None = None,
        cpu_s: int | None = None,
        file_mb: int | None = None,
        split_shots: int = SPLIT_SHOTS,
        security: Any = None,
        connect_s: float = 10.0,
        gate: str | os.PathLike[str] | None = None,
        pause_gate: str | os.PathLike[str] | None = None,
    ) -> None:
        import dask
        from distributed import Client

        self.cluster = None if isinstance(address, str) else address
        self.address = address if isinstance(address, str) else address.scheduler_address
        self.security = security
        self.split_shots = split_shots
        self.connect_s = connect_s
        self.options: dict[str, Any] = {
            "memory_mb": memory_mb,
            "cpu_s": cpu_s,
            "file_mb": file_mb,
            "gate": None if gate is None else os.fspath(gate),
            "pause_gate": None if pause_gate is None else os.fspath(pause_gate),
            "checkpoints": True,
        }
        self._config = dask.config.set(CLUSTER_CONFIG)
        try:
            self.client = Client(
                self.address, security=security, timeout=connect_s, set_as_default=False
            )
        except (OSError, TimeoutError) as exc:
            self._config.__exit__(None, None, None)
            raise UnavailableError(
                f"--dask: no Dask scheduler answers at {self.address}: {exc}"
            ) from None
        self.client.subscribe_topic(NOTES_TOPIC, self._on_note)
        _prompt(self.client)
        with contextlib.suppress(Exception):  # a cluster whose workers are still coming
            self.client.wait_for_workers(1, timeout=connect_s)
        threads = sum(self.client.nthreads().values())
        self.max_workers = max_workers or max(threads, 1)
        self._lock = threading.Lock()
        self._jobs: dict[Future[Any], _Job] = {}
        self._by_token: dict[str, tuple[_Job, _Launch]] = {}
        self._held: list[tuple[_Job, _Launch]] = []  # out when the scheduler went away
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._ids = itertools.count(1)
        self._prefix = os.urandom(4).hex()
        self._shutdown = False
        self._notes = 0
        #: Clear the notes from the scheduler's event log after this many (tests lower it).
        self.notes_kept = NOTES_KEPT
        #: How many jobs went out split into parts.
        self.split_jobs = 0
        self._thread = threading.Thread(target=self._main, name="qmk-dask-pool", daemon=True)
        self._thread.start()

    @classmethod
    def local(
        cls, workers: int, *, env: Mapping[str, str] | None = None, **options: Any
    ) -> DaskPool:
        """A pool on a new ``LocalCluster`` of ``workers`` processes (one thread each,
        ``env`` added to their environment), shut down with the pool (``qmk serve
        --dask local:N``)."""
        import dask
        from distributed import LocalCluster

        with dask.config.set(CLUSTER_CONFIG):
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # the scheduler's HTTP server binds anyway: not 8787
                worker_dashboard_address=None,
                host="127.0.0.1",
                env=dict(env or {}),
            )
        try:
            return cls(cluster, **options)
        except BaseException:
            cluster.close()
            raise

    # ------------------------------------------------------------------ the Executor

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Send ``fn(spec)`` to the cluster (a job's ``run_job`` and its spec); its future.

        Never waits for the cluster: the pool's thread talks to it.
        """
        if kwargs or len(args) != 1:
            raise TypeError("the Dask pool runs fn(spec): one argument")
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        spec = args[0]
        job = _Job(future=future, fn=fn, spec=spec, parts=self._parts_of(spec))
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit after shutdown")
            self._jobs[future] = job
        self._inbox.put(("launch", job))
        return future

    def cancel(self, future: Future[Any], reason: str = "cancelled") -> bool:
        """Stop ``future``'s job: its processes on the workers are SIGKILLed, and the
        future fails at once with :class:`WorkerKilled`. False when it had finished."""
        with self._lock:
            job = self._jobs.pop(future, None)
            if job is None:
                return False
            launches = self._drop(job)
            self._held = [(j, launch) for j, launch in self._held if j is not job]
        future.set_exception(WorkerKilled(reason, {"reason": reason}))
        self._inbox.put(("kill", job, launches, reason))
        return True

    def _drop(self, job: _Job) -> list[_Launch]:
        """With the lock held: take ``job``'s tasks out of the tables; them."""
        launches = list(job.launches.values())
        for launch in launches:
            self._by_token.pop(launch.token, None)
        job.launches.clear()
        return launches

    def listen(self, future: Future[Any], listener: Callable[[Any], None]) -> None:
        """Have ``listener(note)`` called with each checkpoint note of ``future``'s job
        (in the pool's thread, before the future completes)."""
        with self._lock:
            job = self._jobs.get(future)
            if job is not None:
                job.listener = listener

    def request(self, future: Future[Any], payload: Any) -> bool:
        """Send ``payload`` to ``future``'s running job (it reads it at its next fence).

        False for a job the pool does not hold, or a split one (its parts take no
        requests: the kernel preempts it by a kill and starts it again)."""
        with self._lock:
            job = self._jobs.get(future)
            if job is None or job.parts:
                return False
        self._inbox.put(("request", job, payload))  # after its launch: the inbox is FIFO
        return True

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the pool (and a cluster it owns). With ``cancel_futures`` the jobs out
        are killed; else they run on, their results unread."""
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            jobs = list(self._jobs.values()) if cancel_futures else []
        for job in jobs:
            self.cancel(job.future, "shutdown")
        self._inbox.put(("stop",))
        if wait:
            self._thread.join()

    # ------------------------------------------------------------------ for tests

    def job_pids(self) -> list[int]:
        """The pids of the job processes on every worker (a test kills them)."""
        found = self.client.run(_job_pids)
        return [pid for pids in found.values() for pid in pids]

    def holding(self) -> dict[str, tuple[int, int]]:
        """Each Dask worker's address: its pid and how many jobs it runs (tests)."""
        return dict(self.client.run(_holding))

    def busy(self) -> int:
        """How many jobs the pool holds now."""
        with self._lock:
            return len(self._jobs)

    # ------------------------------------------------------------------ the pool's thread

    def _parts_of(self, spec: Any) -> int:
        """How many parts ``spec`` goes out as (0: whole)."""
        if (
            not self.split_shots
            or not isinstance(spec, Mapping)
            or "graph" not in spec
            or spec.get("resume")
            or int(spec.get("shots") or 0) < self.split_shots
        ):
            return 0
        parts = min(self.max_workers, int(spec["shots"]) // self.split_shots)
        return parts if parts > 1 else 0

    def _main(self) -> None:
        while True:
            try:
                action = self._inbox.get(timeout=0.25 if self._held else None)
            except queue.Empty:
                self._retry_held()
                continue
            try:
                if action[0] == "stop":
                    break
                if action[0] == "done":  # with the others done by now: one fetch for all
                    more, pushed = self._more_done()
                    action = ("dones", [action[1], *more], pushed)
                getattr(self, f"_do_{action[0]}")(*action[1:])
            except Exception:  # a bug of ours must not stop the pool's thread
                _log.exception("the Dask pool failed at %s", action[0])
        self._close()

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.unsubscribe_topic(NOTES_TOPIC)
        with contextlib.suppress(Exception):
            self.client.close(timeout=5)
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close(timeout=10)
        self._config.__exit__(None, None, None)

    def _do_launch(self, job: _Job) -> None:
        if job.future.done():
            return
        if not job.parts:
            self._start(job, None)
            return
        spec = dict(job.spec)
        self.split_jobs += 1
        try:
            job.data = self.client.scatter(spec, hash=False)  # one trip per worker
        except Exception as exc:
            self._fail(job, WorkerDied(f"cannot send the job to the cluster: {exc}"))
            return
        for k in range(job.parts):
            self._start(job, k)

    def _start(self, job: _Job, part: int | None, resume: bytes | None = None) -> None:
        """Submit one Dask task of ``job`` (all of it, or ``part``)."""
        token = f"qmk-{self._prefix}-{next(self._ids)}"
        launch = _Launch(token=token, part=part)
        spec = job.spec
        if job.data is not None:
            spec = job.data
        elif isinstance(spec, Mapping) and len(str(spec.get("graph", ""))) > SCATTER_BYTES:
            with contextlib.suppress(Exception):
                spec = job.data = self.client.scatter(dict(spec), hash=False)
        if resume is None and part is None and isinstance(job.spec, Mapping):
            resume = _read(job.latest or job.spec.get("resume"))
        with self._lock:
            if job.future.done():
                return
            job.launches[token] = launch
            self._by_token[token] = (job, launch)
            if self.client.status != "running":  # no scheduler now: once one answers
                self._held.append((job, launch))
                return
        try:
            launch.dask = self.client.submit(
                _run_task,
                token,
                job.fn,
                spec,
                None if part is None else [part, job.parts],
                resume,
                self.options,
                key=token,
                pure=False,
            )
        except Exception:  # the scheduler is gone: send it again once one answers
            with self._lock:
                self._held.append((job, launch))
            return
        launch.dask.add_done_callback(lambda _: self._inbox.put(("done", token)))

    def _more_done(self) -> tuple[list[str], set[str]]:
        """The tokens of the tasks whose "done" waits in the inbox now (the rest stays),
        and those of the outcomes pushed in notes that wait there (nothing to fetch)."""
        tokens: list[str] = []
        pushed: set[str] = set()
        later: list[tuple[Any, ...]] = []
        while len(tokens) < 256:
            try:
                action = self._inbox.get_nowait()
            except queue.Empty:
                break
            if action[0] == "done":
                tokens.append(action[1])
            else:
                later.append(action)
                if action[0] == "note" and "outcome" in action[1]:
                    pushed.add(str(action[1].get("token")))
        for action in later:  # back in the inbox, in their order (after newer ones: they
            self._inbox.put(action)  # touch other jobs, or the same job's later state)
        return tokens, pushed

    def _do_dones(self, tokens: list[str], pushed: set[str]) -> None:
        finished: list[tuple[_Job, _Launch]] = []
        for token in tokens:
            with self._lock:
                found = self._by_token.get(token)
            if found is None or token in pushed:
                continue  # killed meanwhile, or its outcome follows in a note
            if found[1].dask.status == "finished":
                finished.append(found)
            else:
                self._do_done(*found)
        if not finished:
            return
        try:
            outcomes = self.client.gather([launch.dask for _, launch in finished])
        except Exception:  # one of them is gone: each on its own
            for job, launch in finished:
                self._do_done(job, launch)
            return
        for (job, launch), outcome in zip(finished, outcomes, strict=True):
            self._outcome(job, launch, outcome)

    def _do_done(self, job: _Job, launch: _Launch) -> None:
        dask = launch.dask
        status = dask.status
        if status == "finished":
            try:
                outcome = dask.result()
            except Exception as exc:
                self._fail(job, WorkerDied(f"cannot fetch the job's result: {exc}"))
                return
            self._outcome(job, launch, outcome)
            return
        if status == "cancelled":  # the scheduler went away (or restarted)
            with self._lock:
                self._held.append((job, launch))
            return
        error = dask.exception()
        from distributed import KilledWorker

        if isinstance(error, KilledWorker):
            self._restart(job, launch, "its Dask worker died")
        else:
            self._fail(job, WorkerDied(f"the Dask task failed: {type(error).__name__}: {error}"))

    def _restart(self, job: _Job, launch: _Launch, why: str) -> None:
        """Start ``launch`` again elsewhere: from the job's latest state if it saved one."""
        with self._lock:
            job.launches.pop(launch.token, None)
            self._by_token.pop(launch.token, None)
        job.restarts += 1
        if job.restarts > MAX_RESTARTS:
            self._fail(job, WorkerDied(f"{why} {job.restarts} times", {"restarts": job.restarts}))
            return
        _log.warning("job task %s: %s; started again (%d)", launch.token, why, job.restarts)
        if job.parts and job.data is not None:
            with contextlib.suppress(Exception):  # its scattered spec may have died with it
                job.data = self.client.scatter(dict(job.spec), hash=False)
        self._start(job, launch.part)

    def _retry_held(self) -> None:
        """While the scheduler is away: once it answers, send the held tasks again."""
        if self.client.status == "closed":
            with contextlib.suppress(Exception):
                from distributed import Client

                self.client = Client(
                    self.address, security=self.security, timeout=1, set_as_default=False
                )
        if self.client.status != "running":
            return
        with contextlib.suppress(Exception):
            self.client.subscribe_topic(NOTES_TOPIC, self._on_note)
        _prompt(self.client)
        with self._lock:
            held, self._held = self._held, []
        for job, launch in held:
            _log.warning("job task %s: the scheduler is back; sent again", launch.token)
            with self._lock:
                job.launches.pop(launch.token, None)
                self._by_token.pop(launch.token, None)
            if job.parts and job.data is not None:
                with contextlib.suppress(Exception):
                    job.data = self.client.scatter(dict(job.spec), hash=False)
            self._start(job, launch.part)

    def _outcome(self, job: _Job, launch: _Launch, outcome: tuple[Any, ...]) -> None:
        notes = int(outcome[-1])
        if launch.notes < notes:  # its notes are still on their way: they go first
            job.waiting[launch.token] = (outcome, notes)
            return
        with self._lock:
            job.launches.pop(launch.token, None)
            self._by_token.pop(launch.token, None)
        if outcome[0] != "ok":
            _kind, kind, message, data, _ = outcome
            self._fail(job, _error(kind, str(message), dict(data or {})))
            return
        value = outcome[1]
        if launch.part is None:
            self._finish(job, value)
            return
        if not (isinstance(value, Mapping) and value.get("ok")):
            self._finish(job, value)  # a part failed: the job did
            return
        job.results[launch.part] = value["result"]
        job.spans.extend(value.get("spans") or ())
        if len(job.results) == job.parts:
            from qmk.execution.parts import merge_json

            merged = merge_json([job.results[k] for k in range(job.parts)])
            spans = {"spans": job.spans} if job.spans else {}
            self._finish(job, {"ok": True, "result": merged, **spans})

    def _finish(self, job: _Job, value: Any) -> None:
        if self._forget(job):
            job.future.set_result(value)

    def _fail(self, job: _Job, error: BaseException) -> None:
        if self._forget(job):
            job.future.set_exception(error)

    def _forget(self, job: _Job) -> bool:
        """Take ``job`` out of the tables (its other tasks killed); False if it was out."""
        with self._lock:
            if self._jobs.pop(job.future, None) is None:
                return False
            others = self._drop(job)
        if others:
            self._do_kill(job, others, "the job ended")
        job.data = None
        return True

    def _do_kill(self, job: _Job, launches: list[_Launch], reason: str) -> None:
        for launch in launches:
            if launch.dask is not None:
                with contextlib.suppress(Exception):
                    launch.dask.cancel()
        with contextlib.suppress(Exception):
            self.client.run(_kill, [launch.token for launch in launches], reason, wait=False)
        job.data = None

    def _do_request(self, job: _Job, payload: Any) -> None:
        with self._lock:
            tokens = list(job.launches)
        for token in tokens:  # one (a split job takes none)
            with contextlib.suppress(Exception):
                self.client.run(_request, token, payload, wait=False)

    def _on_note(self, event: Any) -> None:
        """The client's loop: a note of a running job came (hand it to the pool's thread)."""
        _, message = event
        self._inbox.put(("note", message))

    def _do_note(self, message: Mapping[str, Any]) -> None:
        self._notes += 1
        if self._notes % self.notes_kept == 0:  # the scheduler keeps the events it passed on
            with contextlib.suppress(Exception):
                self.client.run_on_scheduler(_truncate_notes)
        token = str(message.get("token"))
        with self._lock:
            found = self._by_token.get(token)
        if found is None:
            return
        job, launch = found
        if "outcome" in message:  # the task's end, pushed (its "done" finds it gone)
            self._outcome(job, launch, tuple(message["outcome"]))
            return
        note = dict(message.get("note") or {})
        data = message.get("data")
        target = job.spec.get("checkpoint_dir") if isinstance(job.spec, Mapping) else None
        if data is not None and target is not None and note.get("path"):
            path = Path(str(target)) / Path(str(note["path"])).name
            _write(path, data)
            note["path"] = str(path)
            job.latest = str(path)
        launch.notes += 1
        if job.listener is not None:
            job.listener(note)
        waiting = job.waiting.get(token)
        if waiting is not None and launch.notes >= waiting[1]:
            del job.waiting[token]
            self._outcome(job, launch, waiting[0])


def _prompt(client: Any) -> None:
    """Have ``client`` send to the scheduler within :data:`SEND_EVERY_S` of a message.

    A Dask client batches what it sends, one batch every 10 ms: a job submitted just
    after another message (the release of the job before it) waited up to 10 ms, as
    long as a small job takes. The batch stream's interval is an attribute of Dask's
    ``BatchedSend``, not a setting: left as it is where a version lacks it."""
    stream = getattr(client, "scheduler_comm", None)
    if stream is not None and hasattr(stream, "interval"):
        stream.interval = SEND_EVERY_S


def _error(kind: str, message: str, data: dict[str, Any]) -> TaskError:
    cls: type[TaskError] = {
        "memory": WorkerMemoryError,
        "cpu": WorkerCpuLimit,
        "killed": WorkerKilled,
        "died": WorkerDied,
    }.get(kind, TaskError)
    return cls(message, data)


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def _write(path: Path, data: bytes) -> None:
    """Write a state file atomically (as the executor's ``write_state`` does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def parse_dask(text: str) -> tuple[str, int | None]:
    """``--dask``'s value: ``("local", N)`` for ``local:N``, else ``(address, None)``.

    >>> parse_dask("local:2"), parse_dask("tcp://10.0.0.5:8786")
    (('local', 2), ('tcp://10.0.0.5:8786', None))

    Raises:
        ConfigError: neither ``local:N`` (N >= 1) nor a ``scheme://host:port`` address.
    """
    if text.startswith("local:"):
        count = text.partition(":")[2]
        if count.isdigit() and int(count) >= 1:
            return "local", int(count)
    elif "://" in text and text.rpartition(":")[2].isdigit():
        return text, None
    raise ConfigError(
        f"--dask takes local:N or a scheduler address such as tcp://host:8786, not {text!r}",
        key="dask",
    )


#: The ``qmk serve`` options of TLS to the scheduler, in the order of :func:`check_tls`.
TLS_OPTIONS = ("--dask-tls-ca", "--dask-tls-cert", "--dask-tls-key")


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsFiles:
    """The kernel's side of TLS to the scheduler: the CA that signed the cluster's
    certificates, and the kernel's own certificate and key (PEM files)."""

    ca: str
    cert: str
    key: str

    def security(self) -> Any:
        """Dask's ``Security`` for these files, encryption required."""
        from distributed.security import Security

        return Security(
            tls_ca_file=self.ca,
            tls_client_cert=self.cert,
            tls_client_key=self.key,
            require_encryption=True,
        )


def check_tls(
    text: str | None, ca: str | None, cert: str | None, key: str | None
) -> TlsFiles | None:
    """``qmk serve``'s TLS options for ``--dask text``, checked before anything starts:
    None when none is given (Dask's own configuration applies, docs/scale-out.md).

    Raises:
        ConfigError: some of the three but not all; any of them without a ``tls://``
            scheduler address; a file that is missing, or that Dask cannot load as a
            CA, a certificate or the certificate's key (the message has its reason).
    """
    given = (ca, cert, key)
    if all(value is None for value in given):
        return None
    if any(value is None for value in given):
        missing = [name for name, value in zip(TLS_OPTIONS, given, strict=True) if value is None]
        raise ConfigError(
            f"{', '.join(TLS_OPTIONS)} go together: {', '.join(missing)} is missing",
            key="dask_tls",
        )
    if text is None or not text.startswith("tls://"):
        raise ConfigError(
            f"{', '.join(TLS_OPTIONS)} need a tls:// scheduler address "
            f"(--dask tls://HOST:PORT), not {text!r}",
            key="dask_tls",
        )
    assert ca is not None and cert is not None and key is not None
    for option, path in zip(TLS_OPTIONS, given, strict=True):
        if not os.path.isfile(str(path)):
            raise ConfigError(f"{option}: no such file: {path}", key="dask_tls")
    files = TlsFiles(ca=ca, cert=cert, key=key)
    try:
        security = files.security()
    except ImportError:  # no dask extra: the pool's start says so, in one line
        return files
    try:  # as Dask will load them when it connects: the CA, the certificate and its key
        security.get_connection_args("client")
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        named = ", ".join(f"{o} {p}" for o, p in zip(TLS_OPTIONS, given, strict=True))
        raise ConfigError(
            f"{named}: Dask cannot load them as a CA, a certificate and its key: {exc}",
            key="dask_tls",
        ) from None
    return files


def dask_pool(
    text: str,
    config: Any,
    *,
    workers: int | None = None,
    security: Any = None,
    tls: TlsFiles | None = None,
) -> DaskPool:
    """The kernel's pool for ``--dask text``: the kernel's worker limits, the tests'
    gates from the environment (as :func:`qmk.kernel.workers.kernel_pool`), TLS to the
    scheduler from ``tls`` (``--dask-tls-*``) or ``security``."""
    from qmk.kernel.workers import GATE_ENV, PAUSE_GATE_ENV

    where, count = parse_dask(text)
    if tls is not None:
        security = tls.security()
    options: dict[str, Any] = {
        "max_workers": workers,
        "memory_mb": config.worker_memory_mb,
        "cpu_s": config.worker_cpu_s,
        "file_mb": config.worker_file_mb,
        "gate": os.environ.get(GATE_ENV) or None,
        "pause_gate": os.environ.get(PAUSE_GATE_ENV) or None,
        "security": security,
    }
    if count is not None:
        return DaskPool.local(count, **options)
    return DaskPool(where, **options)


__all__ = [
    "CLUSTER_CONFIG",
    "MAX_RESTARTS",
    "NOTES_TOPIC",
    "PUSH_BYTES",
    "SCATTER_BYTES",
    "SPLIT_SHOTS",
    "TLS_OPTIONS",
    "DaskPool",
    "TlsFiles",
    "check_tls",
    "dask_pool",
    "parse_dask",
]
