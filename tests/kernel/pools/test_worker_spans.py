"""The spans of a job's run inside its worker: carried out by a W3C traceparent in the
worker's run request, recorded in the sandboxed worker, and exported by the kernel's tracer as
children of the job's run span (qmk.execution.spans, qmk.http.tracing)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace

from qmk.execution.request import RunRequest, program_digest
from qmk.kernel.pools.attempt import Attempt, run_job
from qmk.kernel.records.outcome import Done, Failed, decode
from qmk.kernel.service import Kernel
from support.kernel import FENCED, WorkerGate, login, run_kernel, wait_state

GRAPH = FENCED.to_json()
TRACEPARENT = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"


def _spec(*, trace: str | None = None, caps: tuple[str, ...] = ("CAP_ALLOC",)) -> Attempt:
    text = json.dumps(GRAPH)
    request = RunRequest(
        program_digest=program_digest(text),
        shots=200,
        seed=9,
        qubit="qubit_gate_ns_e3",
        profile="logical:surface_code(d=3)",
    )
    return Attempt(request=replace(request, trace_context=trace), program=text, caps=caps)


def test_a_worker_with_no_traceparent_returns_no_spans():
    outcome = decode(run_job(_spec()))
    assert isinstance(outcome, Done) and outcome.spans == []


def test_a_worker_with_a_traceparent_returns_its_spans_under_one_worker_span():
    traced = decode(run_job(_spec(trace=TRACEPARENT)))
    assert isinstance(traced, Done) and traced.spans
    spans = traced.spans
    (top,) = [s for s in spans if s["parent_id"] is None]
    assert top["name"] == "qmk.worker" and top["attributes"]["qmk.shots"] == 200
    ids = {s["span_id"] for s in spans}
    assert all(s["parent_id"] is None or s["parent_id"] in ids for s in spans)
    under_top = {s["name"] for s in spans if s["parent_id"] == top["span_id"]}
    assert under_top == {"qmk.worker.verify", "qmk.engine.choice", "qmk.shots"}


def test_a_refused_run_has_its_worker_span_marked_failed():
    outcome = decode(run_job(_spec(trace=TRACEPARENT, caps=())))
    assert isinstance(outcome, Failed) and outcome.error.code == "QS1004"
    (top,) = [s for s in outcome.spans if s["parent_id"] is None]
    assert "CAP_ALLOC" in top["error"]


def test_with_tracing_off_the_workers_spec_carries_no_trace_context(tmp_path: Path):
    async def body(kernel: Kernel) -> None:
        from qmk.kernel.syscalls.traces import FeedTraces

        # no tracer in the kernel's process: only the feed's, which traces a job whose
        # submit names a traceparent (a gateway's), and this one names none
        assert isinstance(kernel.supervisor.traces, FeedTraces)
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=alice, graph=GRAPH, shots=50, seed=1)
        await wait_state(kernel, alice, job.job_id, "RUNNING")  # held in its worker
        work = kernel.supervisor.running[job.job_id].work
        assert work is not None and work.request.trace_context is None
        gate.open()
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"

    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, gate=gate)


def _traced_job(path: Path, shots: int) -> Callable[[Kernel], Awaitable[dict[str, Any]]]:
    """A kernel body: trace the kernel into ``path`` (JSONL), run FENCED, the job."""
    from qmk.http.tracing import Tracing, make_provider
    from qmk.kernel.observe import KernelObserver

    tracing = Tracing(make_provider(f"jsonl:{path}"))

    async def body(kernel: Kernel) -> dict[str, Any]:
        observer = KernelObserver(kernel)
        stop = observer.listen(tracing.on_event)
        observer.trace_workers(tracing)
        try:
            alice = await login(kernel, "alice")
            job = await kernel.q_submit(
                session_id=alice,
                graph=GRAPH,
                shots=shots,
                seed=4,
                policy={"profile": "logical:surface_code(d=3)"},
            )
            done = await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        finally:
            observer.trace_workers(None)
            stop()
            tracing.shutdown()
        return done.to_json()

    return body


def test_a_kernel_job_gives_one_tree_from_its_run_down_to_the_workers_epochs(tmp_path: Path):
    pytest.importorskip("opentelemetry.sdk")
    path = tmp_path / "spans.jsonl"
    done = run_kernel(tmp_path, _traced_job(path, 300))
    assert done["state"] == "COMPLETED"
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    (root,) = [s for s in spans if s["name"] == "qmk.job"]  # submitted with no trace
    trace = [s for s in spans if s["trace_id"] == root["trace_id"]]
    assert len(trace) == len(spans)  # one job, one trace
    by_id = {s["span_id"]: s for s in trace}
    (run,) = [s for s in trace if s["name"] == "qmk.run"]
    (worker,) = [s for s in trace if s["name"] == "qmk.worker"]
    assert worker["parent_span_id"] == run["span_id"]
    assert run["start_time_unix_nano"] <= worker["start_time_unix_nano"]
    assert worker["end_time_unix_nano"] <= run["end_time_unix_nano"]
    (shots,) = [s for s in trace if s["name"] == "qmk.shots"]
    assert shots["parent_span_id"] == worker["span_id"]
    assert shots["attributes"]["qmk.epochs"] == done["result"]["telemetry"]["epochs"] == 4
    groups = [s for s in trace if s["name"] == "qmk.group"]
    assert groups and all(g["parent_span_id"] == shots["span_id"] for g in groups)
    epochs = [s for s in trace if s["name"] == "qmk.epoch"]
    assert len(epochs) == 4 * len(groups)
    for epoch in epochs:
        group = by_id[epoch["parent_span_id"]]
        assert group["name"] == "qmk.group"
        assert group["start_time_unix_nano"] <= epoch["start_time_unix_nano"]
        assert epoch["end_time_unix_nano"] <= group["end_time_unix_nano"]
        assert epoch["attributes"]["qmk.job_id"] == done["job_id"]


def test_a_job_split_over_dask_workers_has_each_parts_worker_spans_under_its_run(
    tmp_path: Path,
):
    pytest.importorskip("opentelemetry.sdk")
    pytest.importorskip("distributed")
    import asyncio

    from qmk.kernel.pools.dask_pool import DaskPool
    from support.dask_cluster import local_cluster
    from support.kernel import make_config

    path = tmp_path / "spans.jsonl"
    config = make_config(worker_memory_mb=1024)
    body = _traced_job(path, 3000)

    async def main(address: str) -> dict[str, Any]:
        pool = await DaskPool.start(address, max_workers=2, memory_mb=1024, split_shots=1000)
        kernel = await Kernel.open(config, tmp_path / "data", pool=pool)
        try:
            return await body(kernel)
        finally:
            await kernel.close()

    with local_cluster(2) as cluster:
        done = asyncio.run(main(cluster.scheduler_address))
    assert done["state"] == "COMPLETED"
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    (run,) = [s for s in spans if s["name"] == "qmk.run"]
    workers = [s for s in spans if s["name"] == "qmk.worker"]
    assert sorted(w["attributes"]["qmk.part"] for w in workers) == ["0/2", "1/2"]
    assert all(w["parent_span_id"] == run["span_id"] for w in workers)
    assert all(w["trace_id"] == run["trace_id"] for w in workers)
    shots = [s for s in spans if s["name"] == "qmk.shots"]
    assert sorted(s["parent_span_id"] for s in shots) == sorted(w["span_id"] for w in workers)
