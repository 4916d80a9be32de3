"""Benchmark: the kernel's worker pool on a Dask cluster against the local pool.

Two figures, ratios measured in one run (not tests: nothing fails on a timing):

1. Throughput of small jobs (a Bell pair, 100 shots) through an in-process kernel,
   submit to completion: the local pool (2 worker processes) against a Dask
   ``LocalCluster`` of 2 worker processes. Goal: Dask within 2x of the local pool
   (ratio >= 0.5); Dask's per-task overhead is the price.
2. A big noisy trajectory job (default 10^6 shots of a 20-qubit T/H/CNOT circuit on
   ``surface_code(d=5)`` logical qubits, every qubit measured) on a 2-worker cluster
   whose engines use one thread each (a worker is one node's worth of cores): whole on
   one worker, then split in 2 parts (:mod:`qmk.execution.parts`). Goal: >= 1.7x
   faster split, with identical counts (checked, always).

The machine's load is printed with the figures: on a 2-core machine shared with other
work, two workers cannot be twice as fast as one. Results go to
``bench/results/scaleout.json``.

    python bench/bench_scaleout.py [--jobs 300] [--shots 1000000] [--qubits 20]
                                   [--rounds 2] [--distance 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from qmk import __version__, defaults
from qmk.kernel.config import config_from_dict
from qmk.kernel.dask_pool import DaskPool
from qmk.kernel.jobs import run_job
from qmk.kernel.service import Kernel
from qmk.qvm.files import read_graph

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-tenant-key"
CONFIG = {
    "machine": {"physical_qubits": 100_000_000},
    "tenants": {
        "bench": {
            "key": KEY,
            "caps": ["CAP_ALLOC", "CAP_MAGIC"],
            "max_logical_qubits": 1000,
            "max_concurrent_jobs": 64,
            "max_queued_jobs": 100_000,
        }
    },
}


def circuit(qubits: int, rounds: int) -> dict[str, Any]:
    """T/H layers and CNOT ladders on ``qubits`` qubits, every qubit measured at the end."""
    q = [f"q{i}" for i in range(qubits)]
    nodes: list[dict[str, Any]] = [{"id": "a", "op": "ALLOC_LQ", "args": {"n": qubits}, "vqs": q}]
    for r in range(rounds):
        for i in range(qubits):
            nodes.append({"id": f"t{r}_{i}", "op": "APPLY_T", "vqs": [q[i]]})
            nodes.append({"id": f"h{r}_{i}", "op": "APPLY_H", "vqs": [q[i]]})
        for i in range(qubits - 1):
            nodes.append({"id": f"c{r}_{i}", "op": "APPLY_CNOT", "vqs": [q[i], q[i + 1]]})
    nodes += [
        {"id": f"m{i}", "op": "MEASURE_Z", "vqs": [q[i]], "produces": [f"m{i}"]}
        for i in range(qubits)
    ]
    return {
        "version": "0.2",
        "program": {"nodes": nodes},
        "resources": {"vqs": q, "chs": [], "events": [f"m{i}" for i in range(qubits)]},
        "caps": ["CAP_ALLOC"],
    }


async def throughput(pool: Any, jobs: int, data_dir: Path) -> float:
    """Jobs/s of ``jobs`` Bell jobs through a kernel on ``pool`` (after a warm-up)."""
    bell = read_graph(str(ROOT / "examples" / "bell.qvm.json")).to_json()
    kernel = await Kernel.open(config_from_dict(CONFIG), data_dir, pool=pool)
    try:
        session = await kernel.q_negotiate_caps(tenant="bench", key=KEY, requested=["CAP_ALLOC"])
        sid = session["session_id"]

        async def batch(count: int) -> None:
            ids = [
                (await kernel.q_submit(session_id=sid, graph=bell, shots=100, seed=i))["job_id"]
                for i in range(count)
            ]
            for job_id in ids:
                done = await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=600_000)
                assert done["state"] == "COMPLETED", done

        await batch(8)  # every worker started, its modules imported
        started = time.perf_counter()
        await batch(jobs)
        return jobs / (time.perf_counter() - started)
    finally:
        await kernel.close()


def big_spec(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "graph": json.dumps(circuit(args.qubits, args.rounds)),
        "shots": args.shots,
        "seed": 2026,
        "caps": ["CAP_ALLOC"],
        "engine": args.engine,
        "noise": True,
        "qubit": defaults.QUBIT,
        "profile": f"logical:surface_code(d={args.distance})",
        "noise_model": None,
        "calibration": None,
        "checkpoint_dir": None,
        "resume": None,
    }


def timed(pool: DaskPool, spec: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    outcome = pool.submit(run_job, spec).result()
    assert outcome.get("ok"), outcome
    return time.perf_counter() - started, outcome["result"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--shots", type=int, default=1_000_000)
    parser.add_argument("--qubits", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--distance", type=int, default=5)
    parser.add_argument("--engine", default="statevector", help="the big job's engine")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads of each worker's engine (QMK_THREADS)"
    )
    args = parser.parse_args()
    report: dict[str, Any] = {
        "qmk": __version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        local_rate = asyncio.run(throughput_local(args.jobs, root / "local"))
        # the kernel closes its pool, and the pool the LocalCluster it made
        dask_rate = asyncio.run(throughput_dask(args.jobs, root / "dask"))
        ratio = dask_rate / local_rate
        print(
            f"small jobs: local pool {local_rate:7.1f} jobs/s, Dask 2 workers "
            f"{dask_rate:7.1f} jobs/s: ratio {ratio:.2f} (goal >= 0.5)"
        )
        report["small_jobs"] = {
            "jobs": args.jobs,
            "local_jobs_per_s": round(local_rate, 1),
            "dask_jobs_per_s": round(dask_rate, 1),
            "ratio": round(ratio, 3),
            "goal": 0.5,
        }
        # a 2-worker cluster for the big job: whole on one worker, then in 2 parts
        # each worker's engine on its share of the cores (one core: one node's worth)
        threads = str(args.threads)
        env = {"QMK_THREADS": threads, "OMP_NUM_THREADS": threads}
        whole_pool = DaskPool.local(2, split_shots=0, env=env)
        split_pool = DaskPool(whole_pool.address, split_shots=max(args.shots // 2, 1))
        try:
            spec = big_spec(args)
            warm = {**spec, "shots": 100}
            for pool in (whole_pool, split_pool):
                for future in [pool.submit(run_job, warm) for _ in range(4)]:
                    future.result()
            one_s, one = timed(whole_pool, spec)
            two_s, two = timed(split_pool, spec)
        finally:
            split_pool.shutdown()
            whole_pool.shutdown()
        same = one["counts"] == two["counts"]
        speedup = one_s / two_s
        print(
            f"{args.shots} shots, {args.qubits} qubits, d={args.distance}: one worker "
            f"{one_s:.2f} s, split over 2 {two_s:.2f} s: {speedup:.2f}x (goal >= 1.7); "
            f"counts identical: {same}; {one['telemetry']['simulations']} simulations, "
            f"engine {one['engine']}, {args.threads} thread(s) per worker"
        )
        report["split"] = {
            "shots": args.shots,
            "qubits": args.qubits,
            "rounds": args.rounds,
            "distance": args.distance,
            "one_worker_s": round(one_s, 3),
            "two_workers_s": round(two_s, 3),
            "speedup": round(speedup, 3),
            "goal": 1.7,
            "identical_counts": same,
            "simulations": one["telemetry"]["simulations"],
            "engine": one["engine"],
            "threads_per_worker": args.threads,
        }
    report["load_after"] = os.getloadavg()
    print(f"load average before {report['load_before']}, after {report['load_after']}")
    out = ROOT / "bench" / "results" / "scaleout.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["split"]["identical_counts"] else 1


async def throughput_dask(jobs: int, data_dir: Path) -> float:
    """:func:`throughput` on a Dask pool of a new 2-worker ``LocalCluster``."""
    pool = await asyncio.to_thread(DaskPool.local, 2, split_shots=0)
    return await throughput(pool, jobs, data_dir)


async def throughput_local(jobs: int, data_dir: Path) -> float:
    """:func:`throughput` on the kernel's local pool of 2 workers (as ``qmk serve``'s)."""
    from qmk.kernel.workers import kernel_pool

    pool = kernel_pool(
        config_from_dict(CONFIG), data_dir, workers=2, loop=asyncio.get_running_loop()
    )
    return await throughput(pool, jobs, data_dir)


if __name__ == "__main__":
    sys.exit(main())
