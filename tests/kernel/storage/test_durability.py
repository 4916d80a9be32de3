"""A submit either commits and says so, or is refused and leaves nothing: a write that
fails (a full disk) cuts the audit log back and rolls the transaction back; a disk below
its reserve refuses before writing; an idempotency key makes a retried submit safe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from msgspec import UNSET

from qmk.errors import UnavailableError
from qmk.kernel.service import Kernel
from qmk.kernel.storage.audit_verify import verify
from qmk.kernel.storage.store import Store
from support.kernel import BELL, KEYS, login, make_config, run_kernel


def test_a_submit_retried_with_its_idempotency_key_returns_the_same_job(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        first = await kernel.q_submit(
            session_id=alice, graph=BELL, shots=10, seed=1, idempotency_key="run-7"
        )
        again = await kernel.q_submit(
            session_id=alice, graph=BELL, shots=10, seed=1, idempotency_key="run-7"
        )
        assert again.job_id == first.job_id
        other = await kernel.q_submit(
            session_id=alice, graph=BELL, shots=10, seed=1, idempotency_key="run-8"
        )
        assert other.job_id != first.job_id
        bob = await login(kernel, "bob")  # keys are per tenant
        bobs = await kernel.q_submit(
            session_id=bob, graph=BELL, shots=10, seed=1, idempotency_key="run-7"
        )
        assert bobs.job_id != first.job_id
        listed = await kernel.q_list_jobs(session_id=alice)
        assert len(listed.jobs) == 2

    run_kernel(tmp_path, body, workers=1)


def test_a_disk_below_its_reserve_refuses_logins_and_keeps_nothing(tmp_path: Path) -> None:
    """(Submits, restores and delegations too, on a real small disk:
    tests/kernel/storage/test_reserve.py.)"""

    async def body(kernel: Kernel) -> None:
        with pytest.raises(UnavailableError) as caught:
            await login(kernel, "alice")
        assert "min_free_disk_mb" in caught.value.message
        assert caught.value.details["reason"] == "disk-reserve"

    huge = 2**40  # MiB: no disk has that much free
    run_kernel(tmp_path, body, workers=1, config=make_config(min_free_disk_mb=huge))
    lines = (tmp_path / "data" / "audit.log").read_text().splitlines()
    assert not [line for line in lines if '"decision":"grant"' in line]


_FULL_DISK = """
import asyncio, json, resource, signal, sys
from pathlib import Path
from qmk.kernel.config import config_from_dict
from qmk.kernel.service import Kernel

async def main():
    data = Path(sys.argv[1])
    config = config_from_dict(json.loads(sys.argv[2]))
    graph = json.loads(sys.argv[3])
    kernel = await Kernel.open(config, data, workers=1)
    s = await kernel.q_negotiate_caps(tenant="alice", key=sys.argv[4], requested=["CAP_ALLOC"])
    sid = s.session_id
    told = {}
    ok = await kernel.q_submit(session_id=sid, graph=graph, shots=10, seed=1)
    told[ok.job_id] = "accepted"
    # the disk is full: no write past the audit log's end now (the database's log is
    # written again from its start once checkpointed: its writes need no new room)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    full = (data / "audit.log").stat().st_size
    resource.setrlimit(resource.RLIMIT_FSIZE, (full, resource.RLIM_INFINITY))
    refused = 0
    for seed in range(2, 7):
        try:
            await kernel.q_submit(session_id=sid, graph=graph, shots=10, seed=seed)
        except Exception as exc:
            refused += 1
            told[f"refused-{seed}"] = getattr(exc, "code", type(exc).__name__)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    again = await kernel.q_submit(session_id=sid, graph=graph, shots=10, seed=9)
    told[again.job_id] = "accepted"
    await kernel.q_wait(session_id=sid, job_id=again.job_id, timeout_ms=60000)
    await kernel.close()
    print(json.dumps(told), flush=True)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_a_submit_whose_commit_fails_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "machine": {"physical_qubits": 100_000},
        "kernel": {"worker_memory_mb": 1024, "min_free_disk_mb": 0},
        "tenants": {"alice": {"key": KEYS["alice"], "caps": ["CAP_ALLOC"]}},
    }
    script = tmp_path / "full_disk.py"
    script.write_text(_FULL_DISK)
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "data"),
            json.dumps(config),
            json.dumps(BELL),
            KEYS["alice"],
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    told = json.loads(done.stdout.strip().splitlines()[-1])
    refused = {k: v for k, v in told.items() if k.startswith("refused-")}
    assert refused and set(refused.values()) == {"QS1011"}, told
    accepted = sorted(k for k, v in told.items() if v == "accepted")
    store = Store(tmp_path / "data")
    try:
        stored = sorted(row[0] for row in store.db.execute("SELECT job_id FROM jobs"))
    finally:
        store.close()
    assert stored == accepted  # every acknowledged job, and nothing of the refused ones
    report = verify(tmp_path / "data")
    assert report.ok, report


def test_a_result_bigger_than_max_result_mb_fails_the_job_with_a_code(tmp_path: Path) -> None:
    from support.kernel import qubits

    n = 16  # H on 16 qubits: 4000 shots give ~4000 distinct 16-bit keys, ~100 KB of JSON
    names = qubits(n)
    nodes: list[dict[str, Any]] = [{"id": "a", "op": "ALLOC_LQ", "args": {"n": n}, "vqs": names}]
    nodes += [{"id": f"h{i}", "op": "APPLY_H", "vqs": [q]} for i, q in enumerate(names)]
    nodes += [
        {"id": f"m{i}", "op": "MEASURE_Z", "vqs": [q], "produces": [f"e{i}"]}
        for i, q in enumerate(names)
    ]
    nodes.append({"id": "f", "op": "FREE_LQ", "vqs": names})
    graph = {
        "version": "0.2",
        "program": {"nodes": nodes},
        "resources": {"vqs": names, "chs": [], "events": [f"e{i}" for i in range(n)]},
        "caps": ["CAP_ALLOC"],
    }

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        big = await kernel.q_submit(
            session_id=alice, graph=graph, shots=4000, seed=1, policy={"noise": False}
        )
        done = await kernel.q_wait(session_id=alice, job_id=big.job_id, timeout_ms=60_000)
        assert done.state == "FAILED" and done.error.code == "QK305"
        small = await kernel.q_submit(
            session_id=alice, graph=graph, shots=10, seed=1, policy={"noise": False}
        )
        done = await kernel.q_wait(session_id=alice, job_id=small.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED"
        listed = await kernel.q_list_jobs(session_id=alice)
        assert [j.state for j in listed.jobs] == ["COMPLETED", "FAILED"]
        assert all(j.result is UNSET for j in listed.jobs)

    # 0.05 MiB: the small job's result fits, the big one's does not
    run_kernel(tmp_path, body, workers=1, config=make_config(max_result_mb=0.05))
