"""The Dask autoscaler sees QMK's queue (qmk.kernel.pools.dask_scaler, DaskPool.watch_queue).

A real ``LocalCluster``: the kernel's pool publishes the kernel's queue to the scheduler,
whose adaptive target (what ``Adaptive``, ``/api/v1/adaptive_target`` and the Prometheus
gauge read) follows it; under ``cluster.adapt`` the cluster grows with the waiting jobs,
the kernel runs as many at once as the cluster has threads, and no worker holding a job
is retired. Jobs are held at a :class:`~support.kernel.WorkerGate`, so what waits and
what runs is decided by the test, never by the machine's speed; the waits for the
cluster to change wait for that event, with a generous limit against hangs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qmk.kernel.config import config_from_dict
from qmk.kernel.service import Kernel
from support.dask_cluster import local_cluster
from support.kernel import BELL, KEYS, WorkerGate, login, wait_run_queue, wait_state
from support.pools import Hooks

distributed = pytest.importorskip("distributed")

from qmk.kernel.pools.dask_pool import DaskPool  # noqa: E402
from qmk.kernel.pools.dask_scaler import QueuePlugin  # noqa: E402


@pytest.fixture
def cluster() -> Iterator[Any]:
    """One Dask worker process of one thread (a test may scale it)."""
    with local_cluster(1) as local:
        yield local


async def until(condition: Callable[[], bool], what: str, limit_s: float = 120.0) -> None:
    """Return once ``condition()`` holds (the limit only guards against a hang)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if await asyncio.to_thread(condition):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


def target(cluster: Any) -> int:
    """The scheduler's adaptive target, as Adaptive and the HTTP API read it."""
    return int(cluster.sync(cluster.scheduler_comm.adaptive_target))


def run_kernel(tmp_path: Path, cluster: Any, gate: WorkerGate, body: Any) -> Any:
    async def main() -> Any:
        pool = await DaskPool.start(
            cluster.scheduler_address, job_pool=Hooks(gate=str(gate.path))
        )  # no max_workers: it follows the cluster
        config = config_from_dict(  # alice may run 8 jobs at once, bob 1
            {
                "machine": {"physical_qubits": 200_000},
                "kernel": {"worker_memory_mb": 1024},
                "tenants": {
                    "alice": {
                        "key": KEYS["alice"],
                        "caps": ["CAP_ALLOC"],
                        "max_concurrent_jobs": 8,
                    },
                    "bob": {"key": KEYS["bob"], "caps": ["CAP_ALLOC"], "max_concurrent_jobs": 1},
                },
            }
        )
        kernel = await Kernel.open(config, tmp_path / "data", pool=pool)
        try:
            return await body(kernel, pool)
        finally:
            await kernel.close()

    return asyncio.run(main())


def test_the_schedulers_adaptive_target_is_the_workers_the_kernels_waiting_jobs_fill(
    cluster: Any, tmp_path: Path
) -> None:
    """On one one-thread worker, alice's first job runs and four wait; bob's two wait,
    one of them held back by his limit of one job at once. Dask sees no task, yet its
    target is six workers (five jobs a worker would start, and the one running), and
    back to Dask's own once they ended."""

    async def body(kernel: Kernel, pool: DaskPool) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        assert await asyncio.to_thread(target, cluster) <= 1  # Dask alone: no task
        jobs = [await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=0)]
        await wait_state(kernel, alice, jobs[0].job_id, "RUNNING")
        for seed in range(1, 5):
            jobs.append(await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=seed))
        for seed in range(2):
            jobs.append(await kernel.q_submit(session_id=bob, graph=BELL, shots=10, seed=seed))
        # each job waits QUEUED on the shared machine before it joins the run queue
        await wait_run_queue(kernel, *(job.job_id for job in jobs[1:]))
        assert kernel.supervisor.queue_depth() == (5, 1)
        assert await pool.publish_queue()
        assert await asyncio.to_thread(target, cluster) == 6
        assert cluster.scheduler.adaptive_target() == 6  # the HTTP API's and Prometheus'
        gate.open()
        for job in jobs:
            sid = alice if job.tenant == "alice" else bob
            done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
            assert done.state == "COMPLETED"
        assert kernel.supervisor.queue_depth() == (0, 0)
        assert await pool.publish_queue()
        assert await asyncio.to_thread(target, cluster) <= 1

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, cluster, gate, body)


def test_an_adaptive_cluster_grows_with_the_queue_and_the_kernel_runs_on_its_new_workers(
    cluster: Any, tmp_path: Path
) -> None:
    """Under ``adapt(minimum=1, maximum=3)``, three held jobs make the cluster three
    workers; the kernel then runs all three at once (it follows the cluster's threads);
    a worker holding a job is never retired; once the jobs end it shrinks back."""
    adaptive = cluster.adapt(minimum=1, maximum=3, interval="200ms", wait_count=1)

    async def body(kernel: Kernel, pool: DaskPool) -> None:
        sid = await login(kernel, "alice")
        assert kernel.supervisor.workers == 1
        jobs = [
            await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=seed)
            for seed in range(3)
        ]
        await until(lambda: len(cluster.scheduler.workers) == 3, "three workers")
        await until(lambda: kernel.supervisor.workers == 3, "the kernel runs three at once")
        for job in jobs:
            await wait_state(kernel, sid, job.job_id, "RUNNING")
        await until(
            lambda: sorted(jobs for _, jobs in pool.holding().values()) == [1, 1, 1],
            "one job held on each worker",
        )
        gate.open()
        for job in jobs:
            done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
            assert done.state == "COMPLETED"
        await until(lambda: len(cluster.scheduler.workers) == 1, "back to one worker")
        await until(lambda: kernel.supervisor.workers == 1, "the kernel follows it down")

    with WorkerGate(tmp_path) as gate:
        try:
            run_kernel(tmp_path, cluster, gate, body)
        finally:
            adaptive.stop()


def test_a_worker_holding_a_kernels_job_is_not_a_candidate_for_retirement() -> None:
    """The plugin's downscaling hook leaves out the workers a kernel said are busy, and
    forgets a kernel that stopped publishing once its ttl passed."""
    now = [0.0]
    plugin = QueuePlugin(clock=lambda: now[0])

    class Worker:
        def __init__(self, address: str) -> None:
            self.address = address

    a, b = Worker("tcp://a:1"), Worker("tcp://b:1")
    plugin.publish("k", queued=0, running=1, busy=["tcp://a:1"], threads=1, ttl_s=10)
    assert plugin.valid_workers_downscaling(None, [a, b]) == [b]
    plugin.publish("k2", queued=3, running=0, threads=2, ttl_s=20)
    assert plugin.demand() == 4 and plugin.queue_target() == 2
    now[0] = 15.0
    assert plugin.valid_workers_downscaling(None, [a, b]) == [a, b]
    assert plugin.demand() == 3
    now[0] = 25.0
    assert plugin.demand() == 0 and plugin.queue_target() == 0
