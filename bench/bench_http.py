"""Benchmark: the REST API (``qmk serve --http``) beside JSON-RPC, on one real server.

Figures against a real ``qmk serve --socket ... --http 127.0.0.1:0`` started here (not
tests: nothing fails on a timing):

1. ``GET /v1/jobs/{id}`` round trip on loopback, p50/p99, from the standard library's
   ``http.client`` on one keep-alive connection (the least client overhead there is;
   httpx's figure is printed too). Goal: p50 < 1 ms. Beside it, ``q_status`` over the
   Unix socket from :class:`qmk.client.Client` (bench_service.py's figure 1).
2. Submit-to-complete throughput of small jobs (a Bell pair, 100 shots, QVM JSON) with 8
   concurrent clients: ``httpx.AsyncClient`` s, each with its own connection and
   session, submit their share one after another, then wait for all
   (``GET /v1/jobs/{id}/wait``). Jobs/s = jobs / (first submit .. last completion).
   Goal: >= 500 jobs/s. Beside it the same with JSON-RPC :class:`qmk.client.AsyncClient` s.
   Every job's final state and counts are checked.

The machine's 2 cores are shared with the server, its workers and the clients (and, on a
shared machine, with other people's work: compare medians of ``--repeat`` runs). Results
go to ``bench/results/http.json``.

    python bench/bench_http.py [--jobs 400] [--calls 3000] [--clients 8] [--workers 2]
                               [--repeat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from qmk import __version__
from qmk.client import AsyncClient, Client
from qmk.qvm.files import read_graph

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-tenant-key"
LOGIN = {"tenant": "bench", "key": KEY, "requested": ["CAP_ALLOC"]}
CONFIG = f"""
[machine]
physical_qubits = 100_000_000
[tenants.bench]
key = "{KEY}"
caps = ["CAP_ALLOC", "CAP_TELEPORT", "CAP_LINK", "CAP_MAGIC"]
max_logical_qubits = 1000
max_concurrent_jobs = 64
max_queued_jobs = 100000
"""


def start_server(tmp: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    (tmp / "bench.toml").write_text(CONFIG)
    out = tmp / "serve.out"
    argv = [
        sys.executable, "-m", "qmk", "serve", "--socket", str(tmp / "bench.sock"),
        "--data-dir", str(tmp / "data"), "--config", str(tmp / "bench.toml"),
        "--workers", str(workers), "--http", "127.0.0.1:0",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=out.open("wb"), stderr=(tmp / "serve.log").open("wb"))
    deadline = time.monotonic() + 60
    while True:
        found = re.search(r"(http://\S+)", out.read_text())
        if found:
            return proc, found.group(1)
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"qmk serve did not start: {(tmp / 'serve.log').read_text()}")
        time.sleep(0.05)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _figures(times: list[float]) -> dict[str, float]:
    return {
        "calls": len(times),
        "p50_ms": percentile(times, 0.5) * 1e3,
        "p99_ms": percentile(times, 0.99) * 1e3,
        "mean_ms": statistics.fmean(times) * 1e3,
    }


def _session(url: str) -> str:
    reply = httpx.post(f"{url}/v1/sessions", json=LOGIN)
    return str(reply.json()["session_id"])


def bench_get(url: str, calls: int, graph: dict[str, Any]) -> dict[str, Any]:
    """GET /v1/jobs/{id} round trips: http.client (keep-alive), then httpx."""
    sid = _session(url)
    auth = {"Authorization": f"Bearer {sid}"}
    with httpx.Client(base_url=url) as client:
        job = client.post(
            "/v1/jobs", json={"program": graph, "shots": 100, "seed": 1}, headers=auth
        )
        job_id = job.json()["job_id"]
        client.get(f"/v1/jobs/{job_id}/wait", params={"timeout_ms": 30000}, headers=auth)
        times = []
        for i in range(200 + calls):
            started = time.perf_counter()
            client.get(f"/v1/jobs/{job_id}", headers=auth)
            if i >= 200:
                times.append(time.perf_counter() - started)
        with_httpx = _figures(times)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port))
    path = f"/v1/jobs/{job_id}"
    times = []
    for i in range(200 + calls):
        started = time.perf_counter()
        connection.request("GET", path, headers=auth)
        reply = connection.getresponse()
        body = reply.read()
        if i >= 200:
            times.append(time.perf_counter() - started)
    connection.close()
    assert reply.status == 200 and json.loads(body)["state"] == "COMPLETED"
    return {"http_client": _figures(times), "httpx": with_httpx}


def bench_rpc_status(socket: Path, calls: int, graph: dict[str, Any]) -> dict[str, float]:
    with Client.connect(str(socket), tenant="bench", key=KEY) as client:
        job_id = client.q_submit(graph, 100, 1)["job_id"]
        client.q_wait(job_id, 30_000)
        times = []
        for i in range(200 + calls):
            started = time.perf_counter()
            client.q_status(job_id)
            if i >= 200:
                times.append(time.perf_counter() - started)
    return _figures(times)


def _check(job: dict[str, Any]) -> str:
    counts = (job.get("result") or {}).get("counts") or {}
    agree = counts.get("00", 0) + counts.get("11", 0)
    if job["state"] == "COMPLETED" and (sum(counts.values()) != 100 or agree < 90):
        raise SystemExit(f"job {job['job_id']} completed with wrong counts {counts}")
    return str(job["state"])


async def one_rest_client(url: str, graph: dict[str, Any], jobs: int, seed0: int) -> list[str]:
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        reply = await client.post("/v1/sessions", json=LOGIN)
        auth = {"Authorization": f"Bearer {reply.json()['session_id']}"}
        ids = []
        for i in range(jobs):
            body = {"program": graph, "shots": 100, "seed": seed0 + i}
            ids.append((await client.post("/v1/jobs", json=body, headers=auth)).json()["job_id"])
        finals = [
            (
                await client.get(
                    f"/v1/jobs/{job_id}/wait", params={"timeout_ms": 120000}, headers=auth
                )
            ).json()
            for job_id in ids
        ]
    return [_check(job) for job in finals]


async def one_rpc_client(socket: Path, graph: dict[str, Any], jobs: int, seed0: int) -> list[str]:
    async with await AsyncClient.connect(str(socket), tenant="bench", key=KEY) as client:
        ids = [(await client.q_submit(graph, 100, seed0 + i))["job_id"] for i in range(jobs)]
        finals = await asyncio.gather(*(client.q_wait(job_id, 120_000) for job_id in ids))
    return [_check(job) for job in finals]


def bench_throughput(kind: str, where: Any, clients: int, jobs: int, graph: dict[str, Any]) -> dict:
    share = jobs // clients
    one = one_rest_client if kind == "rest" else one_rpc_client

    async def main() -> list[list[str]]:
        return await asyncio.gather(*(one(where, graph, share, 10_000 * c) for c in range(clients)))

    started = time.perf_counter()
    states = [state for per_client in asyncio.run(main()) for state in per_client]
    elapsed = time.perf_counter() - started
    return {
        "wire": kind,
        "clients": clients,
        "jobs": len(states),
        "completed": states.count("COMPLETED"),
        "seconds": elapsed,
        "jobs_per_s": len(states) / elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400, help="jobs per throughput run")
    parser.add_argument("--calls", type=int, default=3000, help="GET calls timed")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="kernel worker processes")
    parser.add_argument("--repeat", type=int, default=1, help="measure this many times")
    options = parser.parse_args(argv)
    graph = read_graph(str(ROOT / "examples" / "bell.qvm.asm")).to_json()
    results: dict[str, Any] = {
        "version": __version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_before": os.getloadavg(),
        "workers": options.workers,
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="qmk-bench-http-") as tmp_name:
        tmp = Path(tmp_name)
        proc, url = start_server(tmp, options.workers)
        try:
            for _ in range(options.repeat):
                gets = bench_get(url, options.calls, graph)
                rpc = bench_rpc_status(tmp / "bench.sock", options.calls, graph)
                rest = bench_throughput("rest", url, options.clients, options.jobs, graph)
                jsonrpc = bench_throughput(
                    "jsonrpc", tmp / "bench.sock", options.clients, options.jobs, graph
                )
                results["runs"].append(
                    {"get": gets, "q_status": rpc, "rest": rest, "jsonrpc": jsonrpc}
                )
                hc, hx = gets["http_client"], gets["httpx"]
                print(
                    f"GET /v1/jobs/{{id}} ({hc['calls']} calls, http.client): p50 "
                    f"{hc['p50_ms']:.3f} ms, p99 {hc['p99_ms']:.3f} ms (goal p50 < 1 ms); "
                    f"httpx p50 {hx['p50_ms']:.3f} ms"
                )
                print(
                    f"q_status over the Unix socket (JSON-RPC): p50 {rpc['p50_ms']:.3f} ms, "
                    f"p99 {rpc['p99_ms']:.3f} ms"
                )
                for run in (rest, jsonrpc):
                    print(
                        f"{run['wire']:>7}: {run['clients']} clients, {run['completed']}/"
                        f"{run['jobs']} jobs completed in {run['seconds']:.2f} s: "
                        f"{run['jobs_per_s']:.0f} jobs/s (goal >= 500)"
                    )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    results["load_avg_after"] = os.getloadavg()
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "http.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
