"""Benchmark: the kernel's worker pool on a Dask cluster against the local pool.

Two figures, ratios measured in one run (not tests: nothing fails on a timing):

1. Throughput of small jobs (a Bell pair, 100 shots) through an in-process kernel,
   submit to completion: the local pool (2 worker processes) against a Dask
   ``LocalCluster`` of 2 worker processes, the pool on the kernel's loop as in ``qmk
   serve``. Goal: Dask within 2x of the local pool (ratio >= 0.5); the second hop (the
   kernel to a Dask worker, the worker to its job process) is the price, measured
   beside the rates as CPU milliseconds per job: of the kernel's process (with a
   ``LocalCluster``'s scheduler in it) and of its workers and job processes.
2. A big noisy trajectory job (default 10^6 shots of a 20-qubit T/H/CNOT circuit on
   ``surface_code(d=5)`` logical qubits, every qubit measured) on a 2-worker cluster
   whose engines use one thread each (a worker is one node's worth of cores): whole on
   one worker, then split in 2 parts (:mod:`qmk.execution.parts`). Goal: >= 1.7x
   faster split, with identical counts (checked, always).

   Beside the wall times, the CPU seconds of the job processes (read in ``/proc``):
   the whole run's against each part's. Their sum over the parts against the whole
   says what splitting costs in work (ideally 1.0); the whole against the longest part
   is the speedup two free cores would give (the critical path), whatever the load of
   the machine; the wall time outside the parts (the job's wall time less its longest
   part's) is the serial rest: sending, merging, fetching the counts.

The machine's load is printed with the figures: on a 2-core machine shared with other
work, two workers cannot be twice as fast as one. Results go to
``bench/results/scaleout.json``.

    python bench/bench_scaleout.py [--jobs 300] [--shots 1000000] [--qubits 20]
                                   [--rounds 2] [--distance 5] [--only split]
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

from _common import cpu_seconds, descendants
from qmk import __version__, defaults
from qmk.execution import runs as run_paths
from qmk.kernel.config import config_from_dict
from qmk.kernel.pools.attempt import Attempt, run_job
from qmk.kernel.pools.dask_pool import DaskPool
from qmk.kernel.records.outcome import Done, Ran, decode
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


async def throughput(pool: Any, jobs: int, data_dir: Path) -> tuple[float, dict[str, float]]:
    """Jobs/s of ``jobs`` Bell jobs through a kernel on ``pool`` (after a warm-up), and
    the CPU milliseconds per job of this process (the kernel, and a LocalCluster's
    scheduler) and of its descendants (the workers and their job processes)."""
    bell = read_graph(str(ROOT / "examples" / "bell.qvm.json")).to_json()
    kernel = await Kernel.open(config_from_dict(CONFIG), data_dir, pool=pool)
    try:
        session = await kernel.q_negotiate_caps(tenant="bench", key=KEY, requested=["CAP_ALLOC"])
        sid = session.session_id

        async def batch(count: int) -> None:
            ids = [
                (await kernel.q_submit(session_id=sid, graph=bell, shots=100, seed=i)).job_id
                for i in range(count)
            ]
            for job_id in ids:
                done = await kernel.q_wait(session_id=sid, job_id=job_id, timeout_ms=600_000)
                assert done.state == "COMPLETED", done

        await batch(8)  # every worker started, its modules imported
        before = tree_cpu()
        started = time.perf_counter()
        await batch(jobs)
        rate = jobs / (time.perf_counter() - started)
        after = tree_cpu()
        spent = {key: round((after[key] - before[key]) * 1000 / jobs, 3) for key in after}
        return rate, spent
    finally:
        await kernel.close()


def big_attempt(args: argparse.Namespace, shots: int | None = None) -> Attempt:
    """The big job's attempt, as the kernel sends it to a worker."""
    graph = circuit(args.qubits, args.rounds)
    request = run_paths.build_request(
        graph,
        shots=args.shots if shots is None else shots,
        seed=2026,
        engine=args.engine,
        noise=True,
        qubit=defaults.QUBIT,
        profile=f"logical:surface_code(d={args.distance})",
    )
    return Attempt(request=request, program=json.dumps(graph), caps=("CAP_ALLOC",))


def tree_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of this process, and of its live descendants."""
    me = os.getpid()
    rest = sum(cpu_seconds(pid) for pid in descendants(me))
    return {"kernel_ms": cpu_seconds(me), "workers_ms": rest}


def timed(pool: DaskPool, attempt: Attempt) -> tuple[float, dict[str, Any], list[float]]:
    """The wall time of ``attempt``'s job, its result, and the CPU seconds each job
    process spent on it (the processes that did nothing left out)."""
    pids = pool.job_pids()
    before = {pid: cpu_seconds(pid) for pid in pids}
    started = time.perf_counter()
    outcome = decode(pool.submit(run_job, attempt).result())
    wall = time.perf_counter() - started
    after = {pid: cpu_seconds(pid) for pid in pids}
    if isinstance(outcome, Done):  # a whole job's result comes encoded
        result = json.loads(outcome.result_json)
    elif isinstance(outcome, Ran):  # a split job's parts merged
        result = outcome.result
    else:
        raise RuntimeError(f"the big job did not complete: {outcome}")
    spent = sorted((after[pid] - before[pid] for pid in pids), reverse=True)
    return wall, result, [round(x, 2) for x in spent if x > 0.05]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument(
        "--pairs", type=int, default=3, help="local/Dask runs of the small jobs, alternated"
    )
    parser.add_argument("--shots", type=int, default=1_000_000)
    parser.add_argument("--qubits", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--distance", type=int, default=5)
    parser.add_argument("--engine", default="statevector", help="the big job's engine")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads of each worker's engine (QMK_THREADS)"
    )
    parser.add_argument(
        "--split-pairs", type=int, default=2, help="whole/split runs of the big job, alternated"
    )
    parser.add_argument("--only", choices=("small", "split"), help="one of the two figures")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "qmk": __version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
    }
    if args.only != "split":
        report["small_jobs"] = small_jobs(args)
    if args.only != "small":
        report["split"] = split_job(args)
    report["load_after"] = os.getloadavg()
    print(f"load average before {report['load_before']}, after {report['load_after']}")
    out = ROOT / "bench" / "results" / "scaleout.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report.get("split", {}).get("identical_counts", True) else 1


def small_jobs(args: argparse.Namespace) -> dict[str, Any]:
    """Figure 1: Bell jobs/s, the local pool against Dask, in alternated runs (the load of
    a shared machine moves between runs: each ratio is of two neighbouring runs)."""
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for index in range(args.pairs):
            load = os.getloadavg()[0]
            local_rate, local_cpu = asyncio.run(throughput_local(args.jobs, root / f"local{index}"))
            # the kernel closes its pool, and the pool the LocalCluster it made
            dask_rate, dask_cpu = asyncio.run(throughput_dask(args.jobs, root / f"dask{index}"))
            ratio = dask_rate / local_rate
            print(
                f"small jobs: local pool {local_rate:7.1f} jobs/s, Dask 2 workers "
                f"{dask_rate:7.1f} jobs/s: ratio {ratio:.2f} (goal >= 0.5; load {load:.1f})"
            )
            print(
                f"  CPU ms per job: local pool kernel {local_cpu['kernel_ms']:.2f} + workers "
                f"{local_cpu['workers_ms']:.2f}; Dask kernel (and scheduler) "
                f"{dask_cpu['kernel_ms']:.2f} + Dask workers and their job processes "
                f"{dask_cpu['workers_ms']:.2f}"
            )
            runs.append(
                {
                    "local_jobs_per_s": round(local_rate, 1),
                    "dask_jobs_per_s": round(dask_rate, 1),
                    "ratio": round(ratio, 3),
                    "load": round(load, 2),
                    "local_cpu_ms_per_job": local_cpu,
                    "dask_cpu_ms_per_job": dask_cpu,
                }
            )
    ratios = sorted(run["ratio"] for run in runs)
    median = ratios[len(ratios) // 2]
    print(f"small jobs: median ratio {median:.2f} of {len(runs)} pairs")
    return {"jobs": args.jobs, "runs": runs, "median_ratio": median, "goal": 0.5}


def split_job(args: argparse.Namespace) -> dict[str, Any]:
    """Figure 2: the big job whole on one worker, then in 2 parts over 2 workers, in
    ``--split-pairs`` alternated pairs (each ratio of two neighbouring runs)."""
    # each worker's engine on its share of the cores (one core: one node's worth)
    threads = str(args.threads)
    env = {"QMK_THREADS": threads, "OMP_NUM_THREADS": threads}
    whole_pool = DaskPool.local(2, split_shots=0, env=env)
    split_pool = DaskPool(
        whole_pool.address, split_shots=max(args.shots // 2, 1), security=whole_pool.security
    )
    pairs: list[dict[str, Any]] = []
    try:
        spec = big_attempt(args)
        warm = big_attempt(args, shots=100)
        for pool in (whole_pool, split_pool):
            for future in [pool.submit(run_job, warm) for _ in range(4)]:
                future.result()
        for _ in range(args.split_pairs):
            pairs.append(split_pair(args, whole_pool, split_pool, spec))
    finally:
        split_pool.shutdown()
        whole_pool.shutdown()
    speedups = sorted(pair["speedup"] for pair in pairs)
    critical = sorted(pair["critical_path_speedup"] for pair in pairs)
    summary = {
        "shots": args.shots,
        "qubits": args.qubits,
        "rounds": args.rounds,
        "distance": args.distance,
        "pairs": pairs,
        "median_speedup": speedups[len(speedups) // 2],
        "median_critical_path_speedup": critical[len(critical) // 2],
        "goal": 1.7,
        "identical_counts": all(pair["identical_counts"] for pair in pairs),
        "engine": args.engine,
        "threads_per_worker": args.threads,
    }
    print(
        f"split: median speedup {summary['median_speedup']:.2f}x (wall), "
        f"{summary['median_critical_path_speedup']:.2f}x (CPU critical path) of {len(pairs)} "
        f"pairs; counts identical in every run: {summary['identical_counts']}"
    )
    return summary


def split_pair(
    args: argparse.Namespace, whole_pool: DaskPool, split_pool: DaskPool, spec: Attempt
) -> dict[str, Any]:
    """One run whole on one worker, then one split over two: the figures of the pair."""
    load_one = os.getloadavg()[0]
    one_s, one, one_cpu = timed(whole_pool, spec)
    load_two = os.getloadavg()[0]
    two_s, two, two_cpu = timed(split_pool, spec)
    same = one["counts"] == two["counts"]
    speedup = one_s / two_s
    whole_cpu = sum(one_cpu)
    work = sum(two_cpu) / whole_cpu if whole_cpu else float("nan")
    critical = whole_cpu / max(two_cpu) if two_cpu else float("nan")
    outside = two_s - float(two["telemetry"]["wall_time_s"])  # the longest part's
    print(
        f"{args.shots} shots, {args.qubits} qubits, d={args.distance}: one worker "
        f"{one_s:.2f} s, split over 2 {two_s:.2f} s: {speedup:.2f}x (goal >= 1.7; load "
        f"{load_one:.1f} then {load_two:.1f}); counts identical: {same}; "
        f"{one['telemetry']['simulations']} simulations, engine {one['engine']}, "
        f"{args.threads} thread(s) per worker"
    )
    print(
        f"  CPU s of the job processes: whole {whole_cpu:.1f}, parts {two_cpu}: work "
        f"{work:.3f}x the whole's, critical path {critical:.2f}x; outside the parts "
        f"{outside:.2f} s of {two_s:.2f} s"
    )
    return {
        "one_worker_s": round(one_s, 3),
        "two_workers_s": round(two_s, 3),
        "speedup": round(speedup, 3),
        "load": [round(load_one, 2), round(load_two, 2)],
        "cpu_whole_s": round(whole_cpu, 2),
        "cpu_parts_s": two_cpu,
        "work_ratio": round(work, 4),
        "critical_path_speedup": round(critical, 3),
        "outside_parts_s": round(outside, 3),
        "identical_counts": same,
        "simulations": one["telemetry"]["simulations"],
    }


async def throughput_dask(jobs: int, data_dir: Path) -> tuple[float, dict[str, float]]:
    """:func:`throughput` on a Dask pool of a new 2-worker ``LocalCluster``."""
    loop = asyncio.get_running_loop()  # the pool on the kernel's loop, as in qmk serve
    pool = await asyncio.to_thread(DaskPool.local, 2, split_shots=0, loop=loop)
    return await throughput(pool, jobs, data_dir)


async def throughput_local(jobs: int, data_dir: Path) -> tuple[float, dict[str, float]]:
    """:func:`throughput` on the kernel's local pool of 2 workers (as ``qmk serve``'s)."""
    from qmk.kernel.pools.workers import kernel_pool

    pool = kernel_pool(
        config_from_dict(CONFIG), data_dir, workers=2, loop=asyncio.get_running_loop()
    )
    return await throughput(pool, jobs, data_dir)


if __name__ == "__main__":
    sys.exit(main())
