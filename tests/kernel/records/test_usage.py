"""Usage metering: one durable record per job end, q_usage's windows and invoice, and
tenant isolation (in-process kernels with real workers; the clock is manual where a
quantity depends on time)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from qmk.abi.jsonrpc import encode
from qmk.client import Client
from qmk.errors import InvalidArgument, NotFoundError
from qmk.kernel.config import ConfigError, config_from_dict
from qmk.kernel.datafiles import DB_FILE
from qmk.kernel.manual_clock import ManualClock, ManualMachineClock
from qmk.kernel.records.usage import FIELDS, UNITS, Usage
from qmk.kernel.service import Kernel
from qmk.kernel.storage.store import Store
from qmk.kernel.storage.usage_rows import UsageRows
from support.jobs import make_job
from support.kernel import (
    BELL,
    KEYS,
    TENANTS,
    WorkerGate,
    ghz_graph,
    login,
    run_kernel,
    serve_factory,
    stop_all,
    wait_state,
)

PRICES = {
    "shots": 0.001,
    "logical_qubit_seconds": 0.5,
    "physical_qubit_cycles": 1e-9,
    "device_seconds": 2.0,
    "result_bytes": 1e-6,
}


def _config(**billing: Any) -> Any:
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {
                "alice": {"key": KEYS["alice"], "caps": ["CAP_ALLOC"], "max_concurrent_jobs": 2},
                "bob": {"key": KEYS["bob"], "caps": ["CAP_ALLOC"]},
            },
            "billing": billing,
        }
    )


def test_the_usage_table_and_the_price_table_are_the_usage_fields():
    assert tuple(UNITS) == FIELDS == Usage.__struct_fields__
    prices = _config(prices=PRICES).billing.prices
    assert prices.__struct_fields__ == FIELDS
    with pytest.raises(ConfigError, match=r"billing\.prices\.qubit_hours"):
        _config(prices={"qubit_hours": 1.0})


def test_a_completed_job_is_metered_from_its_own_record_and_held_time_on_the_clock(
    tmp_path: Path,
) -> None:
    clock = ManualClock(start=1000.0)

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        job = await kernel.q_submit(session_id=sid, graph=ghz_graph(3), shots=300, seed=7)
        await wait_state(kernel, sid, job.job_id, "RUNNING")
        clock.advance(2.5)  # the job holds its qubits 2.5 s on the kernel's clock
        gate.release(1)
        await wait_state(kernel, sid, job.job_id, "COMPLETED")
        done = await kernel.q_status(session_id=sid, job_id=job.job_id)
        telemetry = await kernel.q_get_telemetry(session_id=sid, job_id=job.job_id)
        run = telemetry.telemetry
        usage = await kernel.q_usage(session_id=sid)
        assert usage.count == 1 and usage.tenant == "alice"
        (record,) = usage.records
        assert record["usage_id"] == f"{job.job_id}.1"
        assert record["state"] == "COMPLETED" and record["ended_at"] == done.finished_at
        assert record["shots"] == 300
        assert record["logical_qubit_seconds"] == 3 * 2.5  # 3 logical qubits x 2.5 s
        assert record["physical_qubit_cycles"] == (
            telemetry.physical_qubits * run["logical_cycles"] * 300
        )
        assert record["device_seconds"] == pytest.approx(run["logical_time_ns"] * 1e-9 * 300)
        assert record["result_bytes"] == len(encode(done.result).rstrip(b"\n"))  # its JSON
        assert usage.totals == {name: record[name] for name in FIELDS}
        # the invoice: each quantity at its unit price, and their sum
        lines = {line["item"]: line for line in usage.invoice["lines"]}
        assert set(lines) == set(FIELDS)
        for name, price in PRICES.items():
            assert lines[name]["quantity"] == record[name]
            assert lines[name]["amount"] == pytest.approx(record[name] * price)
            assert lines[name]["unit"] == UNITS[name]
        assert usage.invoice["total"] == pytest.approx(
            sum(record[name] * price for name, price in PRICES.items())
        )
        assert usage.invoice["currency"] == "EUR"

    with WorkerGate(tmp_path) as gate:
        run_kernel(
            tmp_path, body, gate=gate, clock=clock, config=_config(currency="EUR", prices=PRICES)
        )


def test_a_cancelled_job_is_metered_with_no_shots_and_no_machine_time(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=1)
        await kernel.q_cancel(session_id=sid, job_id=job.job_id)
        usage = await kernel.q_usage(session_id=sid, job_id=job.job_id)
        (record,) = usage.records
        assert record["state"] == "CANCELLED"
        assert {name: record[name] for name in FIELDS} == Usage().to_json()
        assert usage.invoice == {"currency": "USD", "lines": [], "total": 0}

    # held in machine time (its clock never moves): cancelled before it ever started
    with WorkerGate(tmp_path) as gate:
        run_kernel(tmp_path, body, gate=gate, config=_config(), machine_clock=ManualMachineClock())


def test_a_tenant_sees_only_its_own_usage_and_another_tenants_job_is_not_found(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        bob = await login(kernel, "bob", ["CAP_ALLOC"])
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=20, seed=3)
        await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=60_000)
        assert (await kernel.q_usage(session_id=alice)).count == 1
        seen = await kernel.q_usage(session_id=bob)
        assert seen.count == 0 and seen.records == [] and seen.totals["shots"] == 0
        with pytest.raises(NotFoundError):
            await kernel.q_usage(session_id=bob, job_id=job.job_id)

    run_kernel(tmp_path, body, config=_config())


def test_windows_limits_and_bad_arguments_of_q_usage(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        ends = []
        for seed in (1, 2, 3):
            job = await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=seed)
            done = await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
            ends.append(done.finished_at)
        newest = await kernel.q_usage(session_id=sid, limit=2)
        assert newest.count == 3 and len(newest.records) == 2
        assert [r["ended_at"] for r in newest.records] == sorted(ends, reverse=True)[:2]
        assert newest.totals["shots"] == 30  # the totals count every record
        window = await kernel.q_usage(session_id=sid, since=ends[1], until=ends[2])
        assert [r["ended_at"] for r in window.records] == [ends[1]]
        for bad in ({"since": float("nan")}, {"since": 5.0, "until": 4.0}, {"limit": 0}):
            with pytest.raises(InvalidArgument):
                await kernel.q_usage(session_id=sid, **bad)

    run_kernel(tmp_path, body, config=_config())


def test_q_usage_bounds_out_of_range_are_coded_errors_on_the_json_rpc_wire(tmp_path: Path) -> None:
    serve, started = serve_factory(tmp_path)
    answers = []
    try:
        server = serve(workers=1)
        with Client.connect(
            str(server.socket), tenant="alice", key=TENANTS["alice"]["key"]
        ) as client:
            for bad in (
                {"since": 10**30},
                {"until": 2**63},
                {"since": -(10**19)},
                {"since": 1e300},
            ):
                with pytest.raises(InvalidArgument) as caught:
                    client.q_usage(**bad)
                answers.append((next(iter(bad)), caught.value))
            in_range = client.q_usage(since=0, until=2**53)
    finally:
        stop_all(started)
    for key, error in answers:
        assert error.code == "QS1012" and key in error.message, error
    assert in_range.count == 0


def test_usage_survives_a_restart(tmp_path: Path) -> None:
    config = _config()
    first: dict[str, Any] = {}

    async def run_once(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        job = await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=4)
        await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
        first.update(job=job.job_id, usage=await kernel.q_usage(session_id=sid))

    async def after(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        assert await kernel.q_usage(session_id=sid) == first["usage"]  # durable

    run_kernel(tmp_path, run_once, config=config)
    run_kernel(tmp_path, after, config=config)
    # no webhook configured: the outbox stays empty
    db = sqlite3.connect(tmp_path / "data" / DB_FILE)
    try:
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM usage").fetchone() == (1,)
    finally:
        db.close()


def test_each_end_of_a_job_is_its_own_record(tmp_path: Path) -> None:
    # a job restored from a checkpoint after it ended ends again: JOB.1, then JOB.2
    store = Store(tmp_path / "data")
    try:
        store.insert_job(make_job("job_x", 1))
        ids = [
            store.insert_usage("job_x", "alice", state, end, Usage(shots=shots), seq=1)
            for state, end, shots in (("COMPLETED", 10.0, 5), ("FAILED", 20.0, 0))
        ]
        store.commit()
        assert ids == ["job_x.1", "job_x.2"]
        count, totals = UsageRows(store).totals("alice", None, None, "job_x")
        assert (count, totals) == (2, Usage(shots=5))
        assert [
            row["usage_id"] for row in UsageRows(store).rows("alice", 15.0, None, None, 10)
        ] == ["job_x.2"]
        assert UsageRows(store).totals("bob", None, None, None) == (0, Usage())
    finally:
        store.close()


def test_a_device_job_is_metered_its_schedules_time_times_its_shots(tmp_path: Path) -> None:
    # (a device job was metered 0 device seconds: usage read a section its result lacked)
    from qmk.devices.neutral_atom.emulator import run_job

    job = {
        "profile": "benchmark_chain",
        "shots": 400,
        "seed": 5,
        "program": [
            {"op": "AllocArray", "n_qubits": 2},
            {"op": "ApplyGate", "name": "H", "targets": [0]},
            {"op": "ApplyGate", "name": "CX", "targets": [0, 1]},
            {"op": "Measure", "targets": [0, 1]},
        ],
    }
    schedule_ns = run_job(job).timeline.total_ns  # one shot's program time on the device
    config = config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {"dave": {"key": "dave-key", "caps": ["CAP_ALLOC", "CAP_DEVICE_NA"]}},
        }
    )

    async def body(kernel: Kernel) -> dict[str, Any]:
        reply = await kernel.q_negotiate_caps(
            tenant="dave", key="dave-key", requested=["CAP_DEVICE_NA"]
        )
        sid = reply.session_id
        accepted = await kernel.q_submit(
            session_id=sid, graph=job, shots=400, seed=5, target="neutral-atom"
        )
        done = await kernel.q_wait(session_id=sid, job_id=accepted.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED", done.error
        (record,) = (await kernel.q_usage(session_id=sid)).records
        return dict(record)

    record = run_kernel(tmp_path, body, config=config, workers=1)
    assert schedule_ns > 0 and record["shots"] == 400
    assert record["device_seconds"] == pytest.approx(schedule_ns * 1e-9 * 400)
    assert record["physical_qubit_cycles"] == 0.0  # no logical machine, no QEC cycles
