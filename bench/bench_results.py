"""Benchmark: serving a large result (issue 14, item 2).

One job of ``--shots`` shots of H on ``--qubits`` qubits (the stabilizer engine, no
noise) gives about one distinct key per shot: 10^6 shots of 40 qubits are ~40 MiB of
counts as JSON. A kernel is opened in this process on a fresh data directory and served
through the real JSON-RPC core (:class:`qmk.abi.jsonrpc.RpcCore`, the bytes a socket
would carry); the figures are the event loop's time per reply:

1. ``q_status`` of the job, ``--calls`` times (the whole result in every reply);
2. ``q_get_result`` page by page, when the kernel has it (every entry once);
3. ``q_list_jobs`` (no result read).

Nothing fails on a timing. Results go to ``bench/results/results.json``.

    python bench/bench_results.py [--qubits 40] [--shots 1000000] [--calls 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, write_json
from qmk.abi.jsonrpc import RpcCore
from qmk.abi.methods import METHODS
from qmk.kernel.config import config_from_dict
from qmk.kernel.service import Kernel
from qmk.qvm.generate import uniform_graph


def graph(n: int) -> dict[str, Any]:
    return uniform_graph(n).to_json()


async def call(core: RpcCore, method: str, **params: Any) -> tuple[float, bytes]:
    line = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    start = time.perf_counter()
    reply = await core.handle_line(line)
    elapsed = time.perf_counter() - start
    assert reply is not None
    return elapsed, reply


async def main(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    config = config_from_dict(
        {
            "machine": {"physical_qubits": 2_000_000},
            "kernel": {"worker_memory_mb": 4096, "max_result_mb": 256},
            "tenants": {"alice": {"key": "k", "caps": ["CAP_ALLOC"], "max_logical_qubits": 64}},
        }
    )
    kernel = await Kernel.open(config, data, workers=1)
    try:
        core = RpcCore(kernel)
        session = await kernel.q_negotiate_caps(tenant="alice", key="k", requested=["CAP_ALLOC"])
        sid = session.session_id
        policy = {"noise": False, "engine": "stabilizer", "timeout_ms": 3_600_000}
        job = await kernel.q_submit(
            session_id=sid, graph=graph(args.qubits), shots=args.shots, seed=1, policy=policy
        )
        start = time.perf_counter()
        done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=3_600_000)
        run_s = time.perf_counter() - start
        assert done.state == "COMPLETED", done.error
        times, size = [], 0
        for _ in range(args.calls):
            elapsed, reply = await call(core, "q_status", session_id=sid, job_id=job.job_id)
            times.append(elapsed)
            size = len(reply)
        entries = len(json.loads(reply)["result"]["result"]["counts"])
        out: dict[str, Any] = {
            "qubits": args.qubits,
            "shots": args.shots,
            "entries": entries,
            "reply_mib": round(size / 2**20, 2),
            "run_and_complete_s": round(run_s, 2),
            "q_status_calls": args.calls,
            "q_status_total_s": round(sum(times), 3),
            "q_status_max_s": round(max(times), 3),
        }
        if "q_get_result" in METHODS:
            pages, cursor, seen, page_max = 0, None, 0, 0.0
            start = time.perf_counter()
            while True:
                elapsed, reply = await call(
                    core, "q_get_result", session_id=sid, job_id=job.job_id, cursor=cursor
                )
                page = json.loads(reply)["result"]
                pages += 1
                seen += len(page["counts"])
                page_max = max(page_max, elapsed)
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == entries, (seen, entries)
            out.update(
                q_get_result_pages=pages,
                q_get_result_total_s=round(time.perf_counter() - start, 3),
                q_get_result_page_max_s=round(page_max, 4),
            )
        elapsed, _ = await call(core, "q_list_jobs", session_id=sid)
        out["q_list_jobs_s"] = round(elapsed, 4)
        return out
    finally:
        await kernel.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", type=int, default=40)
    parser.add_argument("--shots", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(main(args, Path(tmp) / "data"))
    print(json.dumps(figures, indent=2))
    write_json(figures, RESULTS / "results.json")
