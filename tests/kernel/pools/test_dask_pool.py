"""The kernel on a Dask cluster (qmk.kernel.pools.dask_pool): a real LocalCluster, real kills.

Cancel, timeout and the memory cap run against both pools (the local one and the Dask
one) from the same test bodies. Jobs are held at a :class:`~support.kernel.WorkerGate`
(in the Dask workers' own job processes, a FIFO on this one machine), so a test decides
when a job runs, kills a worker or takes a checkpoint, whatever the machine's speed; the
few waits for something to happen (a process to die, the scheduler to come back) wait
for that event, with a generous limit against hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qmk import defaults
from qmk.execution.executor import execute, load_program
from qmk.execution.request import RunRequest, program_digest
from qmk.execution.runs import run
from qmk.kernel.clock import Clock
from qmk.kernel.config import KernelConfig
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.observe import KernelObserver
from qmk.kernel.pools.attempt import Attempt, run_job
from qmk.kernel.pools.pool import WorkerMemoryError
from qmk.kernel.pools.remote import RemotePool
from qmk.kernel.pools.workers import DEFAULT_PRELOAD, kernel_isolation
from qmk.kernel.records.outcome import Done, decode
from qmk.kernel.service import Kernel
from support.children import die_with_us
from support.dask_cluster import local_cluster
from support.kernel import BELL, FENCED, WorkerGate, login, make_config, slow_graph, wait_state
from support.pools import GatedPool, Hooks

distributed = pytest.importorskip("distributed")

from qmk.kernel.pools.dask_bridge import Bridge  # noqa: E402
from qmk.kernel.pools.dask_pool import DaskPool  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two Dask worker processes (one thread each), shared by this module's tests."""
    with local_cluster(2) as local:
        yield local


def run_on(
    kind: str,
    tmp_path: Path,
    body: Callable[[Kernel], Awaitable[Any]],
    address: str | None,
    *,
    workers: int = 2,
    config: KernelConfig | None = None,
    gate: WorkerGate | None = None,
    pause: WorkerGate | None = None,
    clock: Clock | None = None,
    memory_mb: int | None = None,
    split_shots: int = 0,
) -> Any:
    """``body(kernel)`` on a kernel whose pool is the local one or a Dask one (the
    gates are the tests' pool's, :mod:`support.pools`: the local pool is one, and so is
    each Dask worker's job pool)."""
    config = config or make_config()
    data = tmp_path / "data"
    hooks = Hooks(
        gate=None if gate is None else str(gate.path),
        pause_gate=None if pause is None else str(pause.path),
    )

    async def main() -> Any:
        pool: Any
        if kind == "local":
            pool = GatedPool(
                workers,
                memory_mb=memory_mb or config.worker_memory_mb,
                preload=DEFAULT_PRELOAD,
                loop=asyncio.get_running_loop(),
                isolation=kernel_isolation(config, data),
                **hooks.options(),
            )
        else:
            pool = await DaskPool.start(  # driven by the kernel's loop
                address,
                max_workers=workers,
                memory_mb=memory_mb or config.worker_memory_mb,
                job_pool=hooks if hooks.any else None,
                split_shots=split_shots,
            )
        served = None
        if kind == "bridge":  # as in qmk serve: the kernel's RemotePool, the bridge's pool
            served, pool = await _bridged(pool, tmp_path)
        kernel = await Kernel.open(config, data, pool=pool, clock=clock)
        try:
            return await body(kernel)
        finally:
            await kernel.close()
            if served is not None:
                await served

    return asyncio.run(main())


async def _bridged(dask: DaskPool, tmp_path: Path) -> tuple[Any, RemotePool]:
    """``dask`` behind a :class:`Bridge` on a Unix socket (on this loop, as the bridge
    process runs it), and the kernel's :class:`RemotePool` to it: the task that serves the
    bridge (it ends, and closes the Dask pool, when the kernel's line closes)."""
    path = str(tmp_path / "bridge.sock")
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(path)
    listening.listen(4)
    dask.jobs.write_states = False  # the bridge's: the kernel writes its checkpoints
    bridge = Bridge(dask, str(dask.address))
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            await bridge.serve(listening, stop)
        finally:
            listening.close()
            await dask.aclose()

    def connect() -> int:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        fd = os.dup(sock.fileno())
        sock.close()
        return fd

    task = asyncio.ensure_future(serve())
    remote = RemotePool(connect, where=path, loop=asyncio.get_running_loop())
    shutdown = remote.shutdown

    def closed(wait: bool = True, *, cancel_futures: bool = False) -> None:
        shutdown(wait, cancel_futures=cancel_futures)
        stop.set()  # the one line closed: the bridge stops

    remote.shutdown = closed  # type: ignore[method-assign]
    return task, remote


def job_pids(kernel: Kernel) -> set[int]:
    """The pids of the processes that run the kernel's jobs (either pool's)."""
    pool = kernel.pool
    return set(pool.job_pids() if isinstance(pool, DaskPool) else pool.pids)


async def held_pids(kernel: Kernel) -> set[int]:
    """The job processes, once one of them holds a job (one of them is the holder)."""
    pool = kernel.pool
    if isinstance(pool, DaskPool):
        await until(lambda: any(jobs for _, jobs in pool.holding().values()), "a held job")
    return await asyncio.to_thread(job_pids, kernel)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def until(condition: Callable[[], bool], what: str, limit_s: float = 60.0) -> None:
    """Return once ``condition()`` holds (the limit only guards against a hang)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if await asyncio.to_thread(condition):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never: {what}")


POOLS = ["local", "dask"]


def all_measured(n: int) -> dict[str, Any]:
    """:func:`slow_graph` (one round) with every qubit measured: no qubit is outside
    what a record sees, so the executor keeps the whole 2^n state."""
    graph = slow_graph(n, 1)
    nodes = [node for node in graph["program"]["nodes"] if node["op"] != "MEASURE_Z"]
    free = nodes.pop()  # FREE_LQ, last
    events = [f"m{i}" for i in range(n)]
    for i, (vq, event) in enumerate(zip(graph["resources"]["vqs"], events, strict=True)):
        nodes.append({"id": f"m{i}", "op": "MEASURE_Z", "vqs": [vq], "produces": [event]})
    nodes.append(free)
    return {
        **graph,
        "program": {"nodes": nodes},
        "resources": {**graph["resources"], "events": events},
    }


# ----------------------------------------------------------------------------- both pools


@pytest.mark.parametrize("kind", POOLS)
def test_cancel_of_a_running_job_kills_its_process_and_the_next_job_runs(
    kind: str, cluster: Any, tmp_path: Path
) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=100, seed=1)  # held
        await wait_state(kernel, sid, job.job_id, "RUNNING")
        before = await held_pids(kernel)
        cancelled = await kernel.q_cancel(session_id=sid, job_id=job.job_id)
        assert cancelled.state == "CANCELLED"
        await until(lambda: any(not alive(p) for p in before), "the held process killed")
        gate.open()
        small = await kernel.q_submit(session_id=sid, graph=BELL, shots=100, seed=3)
        done = await kernel.q_wait(session_id=sid, job_id=small.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"
        assert done.result["counts"] == run(BELL, shots=100, seed=3).counts
        assert (await kernel.q_status(session_id=sid, job_id=job.job_id)).result is None

    with WorkerGate(tmp_path) as gate:
        run_on(kind, tmp_path, body, cluster.scheduler_address, workers=1, gate=gate)


@pytest.mark.parametrize("kind", POOLS)
def test_a_job_past_its_timeout_is_timed_out_and_its_process_killed(
    kind: str, cluster: Any, tmp_path: Path
) -> None:
    clock = ManualClock()

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=sid, graph=BELL, shots=1, seed=1, policy={"timeout_ms": 500}
        )  # held at the gate: it would never end on its own
        await wait_state(kernel, sid, job.job_id, "RUNNING")
        before = await held_pids(kernel)
        clock.advance(0.5)
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=5000)
        assert done.state == "TIMED_OUT" and "timeout" in done.error.message
        await until(lambda: any(not alive(p) for p in before), "the held process killed")
        assert kernel.pool.busy() == 0

    with WorkerGate(tmp_path) as gate:
        run_on(kind, tmp_path, body, cluster.scheduler_address, gate=gate, clock=clock)


@pytest.mark.parametrize("kind", POOLS)
def test_a_job_over_its_process_memory_cap_is_refused_by_the_workers_router(
    kind: str, cluster: Any, tmp_path: Path
) -> None:
    """Admission takes the job (the kernel's model allows 1 GiB); in the job's process the
    router reads the cap (500 MiB) and refuses the statevector engine the job names before
    it allocates (QE102, naming the cap), and the next job runs. (Unnamed, the router
    would pick an engine that fits: mps holds this product state.) (A worker killed past its cap:
    tests/kernel/pools/test_workers.py.)"""

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        big = await kernel.q_submit(
            session_id=sid,
            graph=all_measured(24),
            shots=1,
            seed=1,
            policy={"noise": False, "engine": defaults.STATEVECTOR},
        )
        done = await kernel.q_wait(session_id=sid, job_id=big.job_id, timeout_ms=60_000)
        assert done.state == "FAILED" and "500 MiB cap (RLIMIT_AS)" in done.error.message
        assert done.error.code == "QE102"
        after = await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=1)
        ok = await kernel.q_wait(session_id=sid, job_id=after.job_id, timeout_ms=60_000)
        assert ok.state == "COMPLETED"

    run_on(kind, tmp_path, body, cluster.scheduler_address, memory_mb=500)


# ----------------------------------------------------------------------------- Dask only


def test_jobs_on_the_cluster_give_the_executors_counts_and_small_and_big_outcomes_come_back(
    cluster: Any, tmp_path: Path
) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice")
        jobs = [
            await kernel.q_submit(session_id=sid, graph=BELL, shots=200, seed=seed)
            for seed in range(6)
        ]
        for seed, job in enumerate(jobs):
            done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
            assert done.result["counts"] == run(BELL, shots=200, seed=seed).counts

    run_on("dask", tmp_path, body, cluster.scheduler_address)
    pool = DaskPool(cluster.scheduler_address, memory_mb=500)
    try:
        with pytest.raises(WorkerMemoryError):
            pool.submit(bytearray, 600 * 2**20).result(timeout=60)
        assert pool.submit(len, "abc").result(timeout=60) == 3
        big = pool.submit(bytes, 3 * 2**20).result(timeout=60)  # more than one frame
        assert big == bytes(3 * 2**20)
        assert pool.submit(dict.fromkeys, [1]).result(timeout=60) == {1: None}  # not JSON
    finally:
        pool.shutdown()


def test_checkpoint_notes_land_in_the_kernels_dir_and_the_scheduler_forgets_them(
    cluster: Any, tmp_path: Path
) -> None:
    """A job that saves its state at each fence (the drift policy's saves) sends 8 notes;
    the scheduler's event log is cleared at the 5th, so it holds at most the 3 after."""
    text = json.dumps(FENCED.to_json())
    request = RunRequest(
        program_digest=program_digest(text),
        shots=50,
        seed=1,
        noise=False,
        qubit=defaults.QUBIT,
        profile=defaults.PROFILE,
        checkpoint_every_ops=1,
    )
    spec = Attempt(request=request, program=text, caps=("CAP_ALLOC",), checkpoint_dir=str(tmp_path))
    pool = DaskPool(cluster.scheduler_address)
    pool.notes_kept = 5
    try:
        notes: list[dict[str, Any]] = []
        future = pool.submit(run_job, spec)
        pool.listen(future, notes.append)
        assert isinstance(decode(future.result(timeout=60)), Done)
        assert len(notes) == 8  # every note before the outcome
        assert sorted(Path(note["path"]).parent for note in notes) == [tmp_path] * 8
        assert all(Path(note["path"]).stat().st_size == note["bytes"] for note in notes)
        assert len(pool.events()) <= 3
    finally:
        pool.shutdown()


def test_a_dask_worker_answers_each_run_as_a_typed_value_read_by_its_form(
    cluster: Any, tmp_path: Path
) -> None:
    """The worker's qmk_run handler, called as the kernel calls it (one pickled call,
    one pickled answer), answers one form of the typed union: Returned with the value
    and the notes sent, Raised with the failure's kind and message, Again when a split
    job's stash cannot be fetched; never a tuple read by position."""
    from distributed import Client

    from qmk.kernel.pools.dask_protocol import ANSWERS, Again, Raised, Returned, Stash

    text = json.dumps(FENCED.to_json())
    request = RunRequest(
        program_digest=program_digest(text),
        shots=50,
        seed=1,
        noise=False,
        qubit=defaults.QUBIT,
        profile=defaults.PROFILE,
        checkpoint_every_ops=1,  # a note at each of its 8 fences
    )
    saving = Attempt(
        request=request, program=text, caps=("CAP_ALLOC",), checkpoint_dir=str(tmp_path)
    )
    pool = DaskPool(cluster.scheduler_address)  # its plugin adds the handlers to the workers
    client = Client(cluster.scheduler_address)
    try:
        assert pool.submit(len, "ab").result(timeout=60) == 2  # the handlers are there
        worker = sorted(client.scheduler_info()["workers"])[0]

        def call(token: str, fn: Any, spec: Any) -> Any:
            blob = pickle.dumps((token, fn, spec, None, None, pool.options, None))
            reply = client.sync(lambda: client.rpc(worker).qmk_run(call=blob))
            answer = pickle.loads(reply)
            assert isinstance(answer, ANSWERS), answer
            return answer

        assert call("t-len", len, "abc") == Returned(value=3, notes=0)
        failed = call("t-int", int, "three")
        assert isinstance(failed, Raised) and failed.kind == "error" and failed.notes == 0
        assert "invalid literal" in failed.message
        ran = call("t-save", run_job, saving)
        assert isinstance(ran, Returned) and ran.notes == 8
        assert isinstance(decode(ran.value), Done)
        # a peer that does not hold it (a closed port would cost Dask's 30 s of connect
        # retries before the same answer)
        away = Stash(digest="0" * 64, address=worker)
        again = call("t-stash", len, away)
        assert isinstance(again, Again) and "cannot fetch" in again.why
        client.sync(lambda: client.rpc(worker).qmk_kill(tokens=["t-gone"], reason="told so"))
        assert call("t-gone", len, "abc") == Raised(kind="killed", message="told so")
    finally:
        client.close()
        pool.shutdown()


@pytest.mark.parametrize("kind", ["dask", "bridge"])
def test_a_checkpoint_on_a_dask_worker_lands_in_the_kernels_data_dir_and_restores(
    cluster: Any, tmp_path: Path, kind: str
) -> None:
    graph, shots, seed = FENCED.to_json(), 500, 17
    expected = dict(run(FENCED, shots=shots, seed=seed, noise=False).counts)

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=alice, graph=graph, shots=shots, seed=seed, policy={"noise": False}
        )
        job_id = job.job_id
        await wait_state(kernel, alice, job_id, "RUNNING")  # held at its first fence
        checkpoint = await kernel.q_checkpoint(session_id=alice, job_id=job_id)
        assert checkpoint.saved is True and checkpoint.program_epoch == 1
        files = list((tmp_path / "data" / "checkpoints" / job_id).glob("*.qmkstate"))
        assert [f.stem for f in files] == [checkpoint.checkpoint_id]
        pause.open()
        done = await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED" and done.result["counts"] == expected
        await kernel.q_restore(
            session_id=alice, job_id=job_id, checkpoint_id=checkpoint.checkpoint_id
        )  # the state travels to whichever worker runs it
        again = await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
        assert again.result["counts"] == expected
        assert again.result["telemetry"]["resumed_from_epoch"] == 1

    with WorkerGate(tmp_path, "pause-gate") as pause:
        run_on(kind, tmp_path, body, cluster.scheduler_address, workers=1, pause=pause)


@pytest.mark.parametrize("put", [False, True], ids=["program-in-each-call", "program-put-once"])
def test_a_big_job_split_over_the_workers_has_the_single_runs_counts(
    put: bool, cluster: Any, tmp_path: Path
) -> None:
    """Its parts run on both workers. A program past ``stash_bytes`` leaves the kernel
    once: put on the first part's worker, fetched from there by the other's."""
    graph, shots, seed = FENCED.to_json(), 3000, 11
    config = make_config(worker_memory_mb=1024)

    async def body(kernel: Kernel) -> None:
        pool = kernel.pool
        assert isinstance(pool, DaskPool)
        if put:
            pool.stash_bytes = 0
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=alice,
            graph=graph,
            shots=shots,
            seed=seed,
            policy={"profile": "logical:surface_code(d=3)"},
        )
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED", done
        assert (pool.split_jobs, pool.stashed) == (1, 1 if put else 0)
        # the job's own request run whole in process: its physics, seed and the shared
        # machine's schedule (its waits are idle noise, drawn from the same generators)
        stored = kernel.store.load_job(job.job_id, "alice")
        assert stored is not None and stored.request.machine is not None
        request = stored.request
        assert (request.shots, request.seed, request.part) == (shots, seed, None)
        assert request.profile == "logical:surface_code(d=3)"
        single = execute(load_program(FENCED), request)
        assert done.result["counts"] == single.counts
        telemetry = done.result["telemetry"]
        assert telemetry["shots"] == shots
        assert telemetry["simulations"] == single.telemetry.simulations > 3  # groups

    run_on("dask", tmp_path, body, cluster.scheduler_address, config=config, split_shots=1000)


def test_a_job_whose_dask_worker_is_killed_resumes_elsewhere_from_its_checkpoint_once(
    cluster: Any, tmp_path: Path
) -> None:
    graph, shots, seed = FENCED.to_json(), 500, 17
    expected = dict(run(FENCED, shots=shots, seed=seed, noise=False).counts)

    async def body(kernel: Kernel) -> str:
        pool = kernel.pool
        assert isinstance(pool, DaskPool)
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=alice, graph=graph, shots=shots, seed=seed, policy={"noise": False}
        )
        job_id = job.job_id
        await wait_state(kernel, alice, job_id, "RUNNING")  # held at its first fence
        checkpoint = await kernel.q_checkpoint(session_id=alice, job_id=job_id)
        assert checkpoint.program_epoch == 1
        holding = await asyncio.to_thread(pool.holding)
        (victim,) = [pid for pid, jobs in holding.values() if jobs]
        os.kill(victim, signal.SIGKILL)  # the Dask worker that runs the job, mid-job
        await until(lambda: not alive(victim), "the worker gone")
        await until(
            lambda: any(jobs for _, jobs in pool.holding().values()), "the job started again"
        )
        pause.open()
        done = await kernel.q_wait(session_id=alice, job_id=job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED" and done.result["counts"] == expected
        assert done.result["telemetry"]["resumed_from_epoch"] == 1
        # the metrics' count of lost workers (deploy/prometheus's QMKWorkerLost)
        assert KernelObserver(kernel).snapshot().workers_lost == 1
        return job_id

    with WorkerGate(tmp_path, "pause-gate") as pause:
        job_id = run_on("dask", tmp_path, body, cluster.scheduler_address, workers=1, pause=pause)
    lines = [
        json.loads(line) for line in (tmp_path / "data" / "audit.log").read_text().splitlines()
    ]
    ends = [r for r in lines if r.get("job_id") == job_id and r.get("state") == "COMPLETED"]
    assert len(ends) == 1  # one result, once
    cluster.wait_for_workers(2, timeout=60)  # the nanny has started a fresh one


def test_a_job_process_dies_with_its_killed_dask_worker_not_left_computing(
    cluster: Any, tmp_path: Path
) -> None:
    """kill -9 of a Dask worker takes its job processes along (their pool's socket
    closes: :func:`qmk.kernel.pools.worker.exit_when_closed`), the one holding a job included."""

    async def body(kernel: Kernel) -> None:
        pool = kernel.pool
        assert isinstance(pool, DaskPool)
        sid = await login(kernel, "alice")
        await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=1)  # held
        await until(lambda: any(jobs for _, jobs in pool.holding().values()), "a held job")
        holding = await asyncio.to_thread(pool.holding)
        (address,) = [where for where, (_, jobs) in holding.items() if jobs]
        victim = holding[address][0]
        children = set(await asyncio.to_thread(pool.job_pids, address))
        assert children and all(alive(pid) for pid in children)
        os.kill(victim, signal.SIGKILL)
        await until(lambda: not any(alive(pid) for pid in children), "its job processes gone")

    with WorkerGate(tmp_path):  # never opened: the job is held in its process throughout
        run_on("dask", tmp_path, body, cluster.scheduler_address, workers=1)
    cluster.wait_for_workers(2, timeout=60)  # the nanny has started a fresh one


# ----------------------------------------------------------------------------- the scheduler


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(*argv: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        start_new_session=True,
        preexec_fn=die_with_us(),
    )


def test_jobs_wait_while_the_scheduler_is_gone_and_run_when_it_is_back(tmp_path: Path) -> None:
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DASK_DISTRIBUTED__WORKER__DAEMON": "False",
    }
    scheduler_argv = ("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port))
    scheduler_argv += ("--dashboard-address", ":0", "--no-dashboard")
    worker_argv = ("distributed.cli.dask_worker", address, "--nthreads", "1", "--no-dashboard")
    scheduler = _start(*scheduler_argv, env=env, log=tmp_path / "scheduler.log")
    worker = _start(*worker_argv, env=env, log=tmp_path / "worker.log")
    processes = [scheduler, worker]
    try:

        async def body(kernel: Kernel) -> None:
            pool = kernel.pool
            assert isinstance(pool, DaskPool)
            sid = await login(kernel, "alice")
            first = await kernel.q_submit(session_id=sid, graph=BELL, shots=50, seed=1)
            done = await kernel.q_wait(session_id=sid, job_id=first.job_id, timeout_ms=60_000)
            assert done.state == "COMPLETED"
            scheduler.kill()
            scheduler.wait()
            await until(lambda: not pool.connected(), "the client sees it gone")
            job = await kernel.q_submit(session_id=sid, graph=BELL, shots=50, seed=2)
            waiting = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=500)
            assert waiting.state in ("QUEUED", "RUNNING"), waiting.error  # neither lost nor failed
            # back at the same address; Dask workers exit with their scheduler, so their
            # process manager (here: the test) starts one again too
            processes.append(_start(*scheduler_argv, env=env, log=tmp_path / "scheduler.log"))
            processes.append(_start(*worker_argv, env=env, log=tmp_path / "worker.log"))
            done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=90_000)
            assert done.state == "COMPLETED"
            assert done.result["counts"] == run(BELL, shots=50, seed=2).counts

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the scheduler and its worker are up
            try:
                with distributed.Client(address, timeout=2) as probe:
                    probe.wait_for_workers(1, timeout=30)
                break
            except (OSError, TimeoutError):
                time.sleep(0.2)
        run_on("dask", tmp_path, body, address, workers=1)
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# ----------------------------------------------------------------------------- membership


@pytest.fixture
def lone_cluster() -> Iterator[Any]:
    """A cluster of one worker, for a test that adds or retires workers."""
    with local_cluster(1) as local:
        yield local


def test_a_worker_that_joins_the_cluster_later_is_sent_jobs(
    lone_cluster: Any, tmp_path: Path
) -> None:
    async def body(kernel: Kernel) -> None:
        pool = kernel.pool
        assert isinstance(pool, DaskPool)
        assert len(await asyncio.to_thread(pool.workers)) == 1
        await asyncio.to_thread(lone_cluster.scale, 2)  # the plugin reaches it as it joins
        await until(lambda: len(pool.workers()) == 2, "the new worker greeted")
        sid = await login(kernel, "alice")
        jobs = [
            await kernel.q_submit(session_id=sid, graph=BELL, shots=100, seed=seed)
            for seed in (1, 2)
        ]  # held at the gate: one on each worker (the fewest jobs per thread)
        await until(
            lambda: sorted(jobs for _, jobs in pool.holding().values()) == [1, 1],
            "a job held on each worker",
        )
        gate.open()
        for seed, job in zip((1, 2), jobs, strict=True):
            done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
            assert done.result["counts"] == run(BELL, shots=100, seed=seed).counts

    with WorkerGate(tmp_path) as gate:
        run_on("dask", tmp_path, body, lone_cluster.scheduler_address, gate=gate)


def test_a_job_whose_worker_closes_under_it_runs_again_on_another_and_completes_once(
    lone_cluster: Any, tmp_path: Path
) -> None:
    """A worker retired mid-job (closed in good order: its plugin's teardown kills the
    job) hands the job back as lost, not failed; it runs again on the other worker."""
    lone_cluster.scale(2)
    lone_cluster.wait_for_workers(2, timeout=60)

    async def body(kernel: Kernel) -> str:
        pool = kernel.pool
        assert isinstance(pool, DaskPool)
        await until(lambda: len(pool.workers()) == 2, "both workers greeted")
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=100, seed=7)  # held
        await until(lambda: any(jobs for _, jobs in pool.holding().values()), "a held job")
        holding = await asyncio.to_thread(pool.holding)
        (address,) = [where for where, (_, jobs) in holding.items() if jobs]

        def retire() -> None:
            with distributed.Client(lone_cluster.scheduler_address, timeout=30) as other:
                other.retire_workers([address], close_workers=True)

        await asyncio.to_thread(retire)
        await until(
            lambda: any(jobs for where, (_, jobs) in pool.holding().items() if where != address),
            "the job held again on the other worker",
        )
        gate.open()
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"
        assert done.result["counts"] == run(BELL, shots=100, seed=7).counts
        return str(job.job_id)

    with WorkerGate(tmp_path) as gate:
        job_id = run_on(
            "dask", tmp_path, body, lone_cluster.scheduler_address, workers=1, gate=gate
        )
    lines = [
        json.loads(line) for line in (tmp_path / "data" / "audit.log").read_text().splitlines()
    ]
    ends = [r for r in lines if r.get("job_id") == job_id and r.get("state") == "COMPLETED"]
    assert len(ends) == 1  # one result, once


def test_a_pool_driven_by_a_loop_is_refused_on_that_loops_own_thread(cluster: Any) -> None:
    """Made there it would wait for itself (it connects before it returns): a one-line
    error that names the way, and nothing left behind."""

    async def main() -> None:
        with pytest.raises(RuntimeError, match=r"DaskPool\.start"):
            DaskPool(cluster.scheduler_address, loop=asyncio.get_running_loop())
        pool = await DaskPool.start(cluster.scheduler_address)
        try:
            with pytest.raises(RuntimeError, match=r"asyncio\.to_thread"):
                pool.holding()  # a synchronous call on the pool's own loop
            assert await asyncio.to_thread(pool.workers)
        finally:
            await pool.aclose()

    asyncio.run(main())


def test_the_pools_close_ends_a_task_that_swallowed_its_cancel(cluster: Any) -> None:
    """A call inside a task of the pool's may swallow the close's cancel (Dask's comms
    turn it into an error, which the watch logs and goes on from; Python 3.11's
    ``asyncio.wait_for`` drops one that meets its result): the close cancels it again,
    and ends, where it waited forever (the split test hung in kernel.close)."""

    async def main() -> None:
        pool = await DaskPool.start(cluster.scheduler_address)
        inside = asyncio.Event()

        async def swallows_one() -> None:
            inside.set()
            # as a call that turns the cancel into an error the task goes on from
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)
            await asyncio.sleep(3600)

        pool._spawn(swallows_one())
        await inside.wait()
        await asyncio.wait_for(pool.aclose(), 30)  # the hang guard: it returns at once

    asyncio.run(main())
