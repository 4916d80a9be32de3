"""The metrics the alert rules of deploy/prometheus/ read: the queue's oldest wait, the
data disk and its reserve, each tenant's stored results and quota, jobs' error codes, and
the audit-chain damage a kernel was started over (an in-process kernel's load read with
q_kernel_load, as a server's scrape reads it)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client")

from qmk.kernel.config import config_from_dict
from qmk.kernel.observe import KernelObserver
from qmk.kernel.service import Kernel
from qmk.kernel.storage.outbox import OutboxRows
from support.clocks import ShiftedClock
from support.kernel import (
    KEYS,
    OPS,
    WorkerGate,
    ghz_graph,
    login,
    run_kernel,
    scrape,
    wait_state,
)
from support.wire import until

WAITED_S = 300.0  # under the jobs' timeout (600 s) and the sessions' life


def _samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in the exposition format."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            found[key[len(name) :]] = float(value)
    return found


def _config() -> Any:
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024, "min_free_disk_mb": 3},
            "tenants": {
                "alice": {"key": KEYS["alice"], "caps": ["CAP_ALLOC"], "max_queued_jobs": 10},
                # room for no result at all: its job runs and FAILs with QK307
                "bob": {"key": KEYS["bob"], "caps": ["CAP_ALLOC"], "max_result_storage_mb": 1e-5},
                "ops": OPS,
            },
        }
    )


def test_metrics_show_the_oldest_wait_the_disk_reserve_result_storage_and_error_codes(
    tmp_path: Path,
) -> None:
    offset = tmp_path / "clock-offset"
    clock = ShiftedClock(offset)

    async def body(kernel: Kernel) -> tuple[str, str, float]:
        probe = KernelObserver(kernel)
        ops = await login(kernel, "ops", OPS["caps"])
        await scrape(kernel, ops)  # the kernel counts jobs' ends from a first scrape on
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        graph = ghz_graph(2)
        held = await kernel.q_submit(session_id=alice, graph=graph, shots=10, seed=1)
        waiting = await kernel.q_submit(session_id=alice, graph=graph, shots=10, seed=2)
        # each job waits QUEUED on the shared machine for its schedule first: the one
        # worker holds the first at the gate once the machine hands it over, and the
        # second then waits in the run queue, which this metric reads
        await wait_state(kernel, alice, held.job_id, "RUNNING")
        await until(lambda: probe.snapshot().queued == {"alice": 1})  # the second job
        offset.write_text(str(WAITED_S))  # the kernel's clock jumps: the second job waited
        during = await scrape(kernel, ops)
        gate.open()
        for sid, job in ((alice, held), (alice, waiting)):
            await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
        over = await kernel.q_submit(session_id=bob, graph=graph, shots=10, seed=3)
        failed = await kernel.q_wait(session_id=bob, job_id=over.job_id, timeout_ms=60_000)
        assert failed.state == "FAILED" and failed.error.code == "QK307"
        stored = float(kernel.supervisor.results.usage["alice"])
        return during, await scrape(kernel, ops), stored

    with WorkerGate(tmp_path) as gate:
        during, after, stored = run_kernel(
            tmp_path, body, workers=1, config=_config(), clock=clock, gate=gate
        )
    oldest = _samples(during, "qmk_queue_oldest_seconds")[""]
    assert WAITED_S <= oldest < WAITED_S + 60
    assert _samples(after, "qmk_queue_oldest_seconds")[""] == 0.0
    assert _samples(after, "qmk_data_disk_reserve_bytes")[""] == 3 * 2**20
    assert _samples(after, "qmk_data_disk_free_bytes")[""] > 0
    used = _samples(after, "qmk_result_storage_bytes")
    assert used['{tenant="alice"}'] == stored > 0 and used['{tenant="bob"}'] == 0
    limits = _samples(after, "qmk_result_storage_limit_bytes")
    assert limits['{tenant="bob"}'] == int(1e-5 * 2**20)
    errors = _samples(after, "qmk_job_errors_total")
    assert errors == {'{code="QK307",tenant="bob"}': 1.0}
    assert _samples(after, "qmk_audit_chain_problems")[""] == 0
    # the local pool: no Dask workers to count, none lost (tests/kernel/pools/test_dask_pool.py
    # counts a killed Dask worker)
    assert _samples(after, "qmk_dask_workers") == {}
    assert _samples(after, "qmk_workers_lost_total") == {"": 0.0}
    assert _samples(after, "qmk_webhook_backlog") == {}  # no webhook configured


def test_a_kernel_started_over_a_cut_audit_log_exposes_the_damage_it_accepted(
    tmp_path: Path,
) -> None:
    async def once() -> None:
        kernel = await Kernel.open(_config(), tmp_path / "data", workers=1)
        sid = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=sid, graph=ghz_graph(2), shots=5, seed=1)
        await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
        await kernel.close()

    async def recovering() -> float:
        kernel = await Kernel.open(_config(), tmp_path / "data", workers=1, recover=True)
        try:
            text = await scrape(kernel, await login(kernel, "ops", OPS["caps"]))
        finally:
            await kernel.close()
        return _samples(text, "qmk_audit_chain_problems")[""]

    asyncio.run(once())
    log = tmp_path / "data" / "audit.log"
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:-2]))
    assert asyncio.run(recovering()) == 1


def test_the_webhook_backlog_its_oldest_wait_and_dead_letters_are_metrics(
    tmp_path: Path,
) -> None:
    from qmk.kernel.manual_clock import ManualClock
    from support.receiver import Receiver

    clock = ManualClock()

    async def backlog(kernel: Kernel, ops: str) -> dict[str, float]:
        text = await scrape(kernel, ops)
        return {
            name: _samples(text, name).get("", -1.0)
            for name in (
                "qmk_webhook_backlog",
                "qmk_webhook_oldest_pending_seconds",
                "qmk_webhook_dead_letters",
            )
        }

    async def settled(kernel: Kernel, backlog: tuple[int, int]) -> None:
        """Once the outbox holds ``backlog`` (pending, dead), none of it due now (every
        attempt made is recorded)."""
        end = asyncio.get_running_loop().time() + 60  # guards a hang only
        while asyncio.get_running_loop().time() < end:
            rows = OutboxRows(kernel.store)
            pending, _, dead = rows.backlog()
            due = rows.next_at()
            if (pending, dead) == backlog and (due is None or due > clock.now()):
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"the outbox never held {backlog}")

    with Receiver(default=503) as receiver:  # refuses every webhook
        config = config_from_dict(
            {
                "machine": {"physical_qubits": 200_000},
                "kernel": {"worker_memory_mb": 1024, "session_ttl_s": 86400},
                "tenants": {"alice": {"key": KEYS["alice"], "caps": ["CAP_ALLOC"]}, "ops": OPS},
                "billing": {
                    "webhook_url": receiver.url,
                    "webhook_secret": "s",
                    "webhook_attempts": 2,
                    "webhook_backoff_s": 3600,
                },
            }
        )

        async def body(kernel: Kernel) -> tuple[dict[str, float], ...]:
            sid, ops = await login(kernel, "alice"), await login(kernel, "ops", OPS["caps"])
            for seed in (1, 2):
                job = await kernel.q_submit(session_id=sid, graph=ghz_graph(2), shots=5, seed=seed)
                await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
            await asyncio.to_thread(receiver.wait_for, 2)  # each refused once
            await settled(kernel, (2, 0))
            clock.advance(120)
            waiting = await backlog(kernel, ops)
            clock.advance(3600)  # their second attempts are due, and refused: dead letters
            await asyncio.to_thread(receiver.wait_for, 4)
            await settled(kernel, (0, 2))
            return waiting, await backlog(kernel, ops)

        waiting, dead = run_kernel(tmp_path, body, config=config, clock=clock)
    assert waiting == {
        "qmk_webhook_backlog": 2,
        "qmk_webhook_oldest_pending_seconds": 120.0,
        "qmk_webhook_dead_letters": 0,
    }
    assert dead == {
        "qmk_webhook_backlog": 0,
        "qmk_webhook_oldest_pending_seconds": 0.0,
        "qmk_webhook_dead_letters": 2,
    }
