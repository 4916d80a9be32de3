"""Benchmark: small-job throughput and status round trips, gRPC beside JSON-RPC, one server.

Against a real ``qmk serve --socket ... --grpc 127.0.0.1:0 --workers 2`` started here
(figures, not tests: nothing fails on a timing). The two wires are measured turn about
in each round (the order alternating), so a change of the machine's load hits both:

1. **Status round trip**, p50/p99, one call at a time: ``q_status`` over the Unix socket
   from :class:`qmk.client.Client`, and ``Status`` from :class:`qmk.grpc.Client` (a
   blocking gRPC channel over TCP on 127.0.0.1).
2. **Throughput of small jobs** (a Bell pair, 100 shots, as QVM JSON; gRPC sends it as
   ``program`` text with ``format: qvm-json``): ``--clients`` concurrent clients, each
   with its own connection and session (opened before the clock starts), submit their
   share of the jobs one after another, then wait for all of them. JSON-RPC:
   :class:`qmk.client.AsyncClient`; gRPC: ``grpc.aio`` stubs on the messages of
   :mod:`qmk.grpc.schema`, one channel per client. Jobs/s = jobs submitted and completed
   / (first submit .. last completion); every job's state and counts are checked, and
   every job has a seed of its own (no result-cache hits). Goal (issue 31): gRPC within
   1.5x of JSON-RPC (the ratio JSON-RPC / gRPC at most 1.5).

Beside each rate, the CPU time per job of the kernel process, its workers and the clients
(from ``/proc``, ``bench_http.CpuMeter``), and the ratio of the server's CPU per job
(kernel + workers) gRPC / JSON-RPC: on a shared machine the wall-clock rates swing with
the load, the CPU a job costs the server much less. Results go to ``bench/results/grpc.json``.

    python bench/bench_grpc.py [--jobs 300] [--calls 2000] [--clients 8] [--workers 2]
                               [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    KEY,
    RESULTS,
    call_latencies,
    describe,
    installed,
    kernel_config,
    load_average,
    load_averages,
    machine,
    spread,
    write_json,
)
from bench_http import CpuMeter
from qmk.abi.proto import SERVICE_NAME
from qmk.client import AsyncClient, Client
from qmk.grpc.client import Client as GrpcClient
from qmk.grpc.schema import messages
from qmk.qvm.files import read_graph

ROOT = Path(__file__).resolve().parents[1]
#: The goal of issue 31: gRPC's small-job throughput within this factor of JSON-RPC's.
GOAL_RATIO = 1.5


def start_server(tmp: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """``qmk serve`` with a Unix socket and gRPC on a free port; the process and target."""
    (tmp / "bench.toml").write_text(kernel_config())
    out = tmp / "out.txt"
    argv = [
        sys.executable, "-m", "qmk", "serve", "--socket", str(tmp / "bench.sock"),
        "--data-dir", str(tmp / "data"), "--config", str(tmp / "bench.toml"),
        "--workers", str(workers), "--grpc", "127.0.0.1:0",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=out.open("wb"), stderr=(tmp / "serve.log").open("wb"))
    deadline = time.monotonic() + 60
    while True:
        found = re.search(r"grpc://(\S+)", out.read_text())
        if found:
            return proc, found.group(1)
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"qmk serve did not start: {(tmp / 'serve.log').read_text()}")
        time.sleep(0.05)


def check(job: dict[str, Any]) -> str:
    """A Bell pair of 100 shots: nearly all 00 or 11 (rare logical errors), never a cache hit."""
    result = job.get("result") or {}
    counts = result.get("counts") or {}
    if job["state"] == "COMPLETED":
        agree = counts.get("00", 0) + counts.get("11", 0)
        if sum(counts.values()) != 100 or agree < 90:
            raise SystemExit(f"job {job['job_id']} completed with wrong counts {counts}")
        if (result.get("telemetry") or {}).get("cache_hit"):
            raise SystemExit(f"job {job['job_id']} was a cache hit: the seeds repeat")
    return str(job["state"])


async def jsonrpc_run(socket: Path, clients: int, share: int, graph: Any, seed0: int) -> Any:
    opened = [
        await AsyncClient.connect(str(socket), tenant="bench", key=KEY) for _ in range(clients)
    ]

    async def one(client: AsyncClient, seed: int) -> list[str]:
        ids = [(await client.q_submit(graph, 100, seed + i)).job_id for i in range(share)]
        finals = await asyncio.gather(*(client.q_wait(j, 120_000) for j in ids))
        return [check(job) for job in finals]

    try:
        started = time.perf_counter()
        states = await asyncio.gather(*(one(c, seed0 + 10_000 * i) for i, c in enumerate(opened)))
        return [s for each in states for s in each], time.perf_counter() - started
    finally:
        for client in opened:
            await client.aclose()


async def grpc_run(target: str, clients: int, share: int, text: str, seed0: int) -> Any:
    import grpc

    classes = messages()

    def stub(channel: Any, rpc: str, request: str, reply: str) -> Any:
        return channel.unary_unary(
            f"/{SERVICE_NAME}/{rpc}",
            request_serializer=classes[request].SerializeToString,
            response_deserializer=classes[reply].FromString,
        )

    channels = [grpc.aio.insecure_channel(target) for _ in range(clients)]
    sessions = []
    for channel in channels:
        negotiate = stub(channel, "NegotiateCaps", "NegotiateCapsRequest", "Session")
        request = classes["NegotiateCapsRequest"](tenant="bench", key=KEY, requested=["CAP_ALLOC"])
        reply = await negotiate(request)
        sessions.append((("authorization", f"Bearer {reply.session_id}"),))

    async def one(channel: Any, metadata: Any, seed: int) -> list[str]:
        submit = stub(channel, "Submit", "SubmitRequest", "Job")
        wait = stub(channel, "Wait", "WaitRequest", "Job")
        ids = []
        for i in range(share):
            request = classes["SubmitRequest"](
                program=text, format="qvm-json", shots=100, seed=seed + i
            )
            ids.append((await submit(request, metadata=metadata)).job_id)
        finals = await asyncio.gather(
            *(wait(classes["WaitRequest"](job_id=j, timeout_ms=120_000), metadata=metadata)
              for j in ids)
        )  # fmt: skip
        return [check(json.loads(job.json)) for job in finals]

    try:
        started = time.perf_counter()
        states = await asyncio.gather(
            *(
                one(ch, md, seed0 + 10_000 * i)
                for i, (ch, md) in enumerate(zip(channels, sessions, strict=True))
            )
        )
        return [s for each in states for s in each], time.perf_counter() - started
    finally:
        for channel in channels:
            await channel.close()


def throughput(wire: str, run: Any, pid: int) -> dict[str, Any]:
    with CpuMeter(kernel_pid=pid) as meter:
        states, elapsed = asyncio.run(run)
    per_job = {name: seconds / len(states) * 1e3 for name, seconds in meter.spent.items()}
    completed = states.count("COMPLETED")
    return {
        "wire": wire,
        "jobs": len(states),
        "completed": completed,
        "seconds": elapsed,
        "jobs_per_s": completed / elapsed,
        "cpu_ms_per_job": per_job,
        "load_average": load_average(),
    }


def statuses(socket: Path, target: str, calls: int, graph: Any, order: list[str]) -> dict:
    with (
        Client.connect(str(socket), tenant="bench", key=KEY) as rpc,
        GrpcClient.connect(target, tenant="bench", key=KEY) as grpc_client,
    ):
        job_id = rpc.q_submit(graph, 100, 1).job_id
        rpc.q_wait(job_id, 30_000)
        calls_of = {
            "jsonrpc": lambda: rpc.q_status(job_id),
            "grpc": lambda: grpc_client.rpc("Status", job_id=job_id),
        }
        return {wire: call_latencies(calls_of[wire], calls) for wire in order}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs per throughput run")
    parser.add_argument("--calls", type=int, default=2000, help="status calls timed per wire")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="kernel worker processes")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    options = parser.parse_args(argv)
    graph = read_graph(str(ROOT / "examples" / "bell.qvm.asm")).to_json()
    text = json.dumps(graph)
    share = options.jobs // options.clients
    info = machine(**installed("grpcio", "protobuf"))
    print(describe(info, f"{options.workers} workers, {options.clients} clients"))
    results: dict[str, Any] = {**info, "workers": options.workers, "clients": options.clients}
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="qmk-bench-grpc-") as tmp_name:
        tmp = Path(tmp_name)
        proc, target = start_server(tmp, options.workers)
        try:
            for number in range(1, options.repeat + 1):
                order = ["jsonrpc", "grpc"] if number % 2 else ["grpc", "jsonrpc"]
                status = statuses(tmp / "bench.sock", target, options.calls, graph, order)
                runs = {}
                for wire in order:
                    seed0 = 1_000_000 * (2 * number + (wire == "grpc"))
                    run = (
                        jsonrpc_run(tmp / "bench.sock", options.clients, share, graph, seed0)
                        if wire == "jsonrpc"
                        else grpc_run(target, options.clients, share, text, seed0)
                    )
                    runs[wire] = throughput(wire, run, proc.pid)
                ratio = runs["jsonrpc"]["jobs_per_s"] / runs["grpc"]["jobs_per_s"]
                status_ratio = status["grpc"]["p50_ms"] / status["jsonrpc"]["p50_ms"]
                server = {w: r["cpu_ms_per_job"]["kernel"] + r["cpu_ms_per_job"]["workers"]
                          for w, r in runs.items()}  # fmt: skip
                cpu_ratio = server["grpc"] / server["jsonrpc"] if server["jsonrpc"] else None
                rounds.append(
                    {"status": status, "throughput": runs, "throughput_ratio": ratio,
                     "status_p50_ratio": status_ratio, "server_cpu_ratio": cpu_ratio}
                )  # fmt: skip
                print(f"round {number} (order {' then '.join(order)}):")
                for wire in ("jsonrpc", "grpc"):
                    got, run = status[wire], runs[wire]
                    cpu = run["cpu_ms_per_job"]
                    print(
                        f"  {wire:8s} status p50 {got['p50_ms']:.3f} ms p99 {got['p99_ms']:.3f} "
                        f"ms; {run['jobs']} jobs ({run['completed']} completed) "
                        f"{run['jobs_per_s']:.0f} jobs/s; CPU ms/job kernel "
                        f"{cpu['kernel']:.2f} workers {cpu['workers']:.2f} clients "
                        f"{cpu['clients']:.2f}; load {run['load_average']:.1f}"
                    )
                verdict = "within" if ratio <= GOAL_RATIO else "NOT within"
                print(
                    f"  throughput JSON-RPC / gRPC = {ratio:.2f} ({verdict} the goal of "
                    f"{GOAL_RATIO}x); status p50 gRPC / JSON-RPC = {status_ratio:.2f}; server "
                    f"CPU per job (kernel + workers) gRPC / JSON-RPC = {cpu_ratio or 0:.2f}"
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            results["exit_status"] = proc.wait(60)
    results["rounds"] = rounds
    results["summary"] = {
        "throughput_ratio": spread([r["throughput_ratio"] for r in rounds]),
        "status_p50_ratio": spread([r["status_p50_ratio"] for r in rounds]),
        "server_cpu_ratio": spread([r["server_cpu_ratio"] or 0.0 for r in rounds]),
        "goal_ratio": GOAL_RATIO,
        "all_completed": all(
            run["completed"] == run["jobs"] for r in rounds for run in r["throughput"].values()
        ),
    }
    summary = results["summary"]["throughput_ratio"]
    print(
        f"\nthroughput JSON-RPC / gRPC over {len(rounds)} rounds: min {summary['min']:.2f}, "
        f"median {summary['median']:.2f}, max {summary['max']:.2f} (goal <= {GOAL_RATIO})"
    )
    results["load_average_at_end"] = load_averages()
    write_json(results, RESULTS / "grpc.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
