"""Jobs that span modules: admitted instead of refused, their cross-module gates teleported.

A machine of 2 000 physical qubits in two modules holds 6 logical qubits of d=9 (162
physical each) per module. A GHZ state on 8 qubits (1 296 physical) fits neither, so
the kernel places it over both and teleports the CNOTs that join them: a real
in-process kernel (workers, SQLite) runs it and its counts are exactly GHZ's (only
all-zeros and all-ones; the split binomial within 5 sigma); telemetry says how many
gates were teleported, how many pairs they consumed and the latency added, and the
run's own channel counter agrees. A session without CAP_LINK and a tenant without room
in ``max_channels`` are refused with the existing coded errors.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from qmk.errors import AdmissionError, CapabilityError, QuotaError
from qmk.kernel.admit.faults import Placement
from qmk.kernel.config import KernelConfig, config_from_dict
from qmk.kernel.device import LogicalMachine
from qmk.kernel.service import Kernel
from support.cli import qmk
from support.kernel import KEYS, ghz_graph, login, run_kernel

SHOTS, SEED = 4000, 2911
LATENCY_NS = 2500.0


def config(*, max_channels: int = 2, link_fidelity: float = 1.0, modules: int = 2) -> KernelConfig:
    return config_from_dict(
        {
            "machine": {"physical_qubits": 2000, "modules": modules},
            "kernel": {"worker_memory_mb": 1024},
            "faults": {"link_fidelity": link_fidelity, "link_latency_ns": LATENCY_NS},
            "tenants": {
                "alice": {
                    "key": KEYS["alice"],
                    "caps": ["CAP_ALLOC", "CAP_LINK"],
                    "max_channels": max_channels,
                },
            },
        }
    )


def submit_ghz(tmp_path: Path, cfg: KernelConfig, caps: list[str] | None = None, n: int = 8) -> Any:
    async def body(kernel: Kernel) -> Any:
        alice = await login(kernel, "alice", caps)
        try:
            job = await kernel.q_submit(
                session_id=alice,
                graph=ghz_graph(n),
                shots=SHOTS,
                seed=SEED,
                policy={"noise": False},
            )
        except (CapabilityError, QuotaError, AdmissionError) as exc:
            return exc
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id)
        telemetry = await kernel.q_get_telemetry(session_id=alice, job_id=job.job_id)
        return done, telemetry

    return run_kernel(tmp_path, body, config=cfg)


def test_a_job_larger_than_any_module_runs_over_two_with_teleported_gates(tmp_path: Path) -> None:
    done, telemetry = submit_ghz(tmp_path, config())
    assert done.state == "COMPLETED", done
    counts = done.result["counts"]
    assert set(counts) == {"0" * 8, "1" * 8}  # keyed by the program's own 8 events
    sigma = math.sqrt(SHOTS / 4)
    assert abs(counts["1" * 8] - SHOTS / 2) <= 5 * sigma
    teleported = telemetry.teleportation
    # the chain q0..q7 split 4 | 4 crosses once: one teleported CNOT, one pair
    assert teleported["modules"] == 2
    assert teleported["teleported_gates"] == 1 and teleported["epr_pairs"] == 1
    assert teleported["link_latency_ns"] == LATENCY_NS
    assert teleported["latency_added_ns"] == LATENCY_NS
    assert telemetry.telemetry["channel_uses"] == {"teleported-gate": 1}
    assert telemetry.physical_qubits > 1000  # more than one module holds
    (start,) = telemetry.device["starts"]
    assert start["modules"] == [0, 1]
    # the stored program is the teleported one: its attestation replays to the same counts
    status, out, err = qmk("audit", "replay", str(tmp_path / "data"), done.job_id)
    assert status == 0 and "the same counts" in out, (out, err)


def test_a_spanning_job_runs_on_the_modules_its_program_declares(tmp_path: Path) -> None:
    graph = ghz_graph(8)
    alloc = graph["program"]["nodes"][0]
    graph["program"]["nodes"][:1] = [  # q0 q2 q4 q6 on module 1, the others on module 0
        {**alloc, "id": f"a{i}", "args": {"n": 1}, "vqs": [q], "metadata": {"module": 1 - i % 2}}
        for i, q in enumerate(alloc["vqs"])
    ]

    async def body(kernel: Kernel) -> Any:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(
            session_id=alice, graph=graph, shots=SHOTS, seed=SEED, policy={"noise": False}
        )
        done = await kernel.q_wait(session_id=alice, job_id=job.job_id)
        telemetry = await kernel.q_get_telemetry(session_id=alice, job_id=job.job_id)
        return done, telemetry

    done, telemetry = run_kernel(tmp_path, body, config=config())
    assert done.state == "COMPLETED"
    assert set(done.result["counts"]) == {"0" * 8, "1" * 8}
    # every CNOT of the chain crosses: 7 teleported gates, each waiting on the one before
    teleported = telemetry.teleportation
    assert teleported["teleported_gates"] == teleported["epr_pairs"] == 7
    assert teleported["latency_added_ns"] == 7 * LATENCY_NS
    assert telemetry.telemetry["channel_uses"] == {"teleported-gate": 7}


def test_a_spanning_job_asks_its_pairs_at_the_links_fidelity(tmp_path: Path) -> None:
    done, telemetry = submit_ghz(tmp_path, config(link_fidelity=0.9))
    assert done.state == "COMPLETED"
    assert telemetry.teleportation["link_fidelity"] == 0.9
    # one teleported CNOT across the cut: X on its target (prob 2(1-F)/3 with Y) splits
    # the GHZ string at the cut; the kernel asked 0.9 of a link that delivers 0.9
    counts = done.result["counts"]
    split = sum(v for k, v in counts.items() if k not in ("0" * 8, "1" * 8))
    p = 2 * (1 - 0.9) / 3
    assert abs(split - SHOTS * p) <= 5 * math.sqrt(SHOTS * p * (1 - p)) + 1
    assert set(counts) <= {"0" * 8, "1" * 8, "00001111", "11110000"}


def test_a_session_without_cap_link_is_refused_a_spanning_job(tmp_path: Path) -> None:
    refused = submit_ghz(tmp_path, config(), caps=["CAP_ALLOC"])
    assert isinstance(refused, CapabilityError)
    assert refused.code == "QS1004" and refused.details["missing"] == ["CAP_LINK"]


def test_a_tenant_without_channels_left_is_refused_a_spanning_job(tmp_path: Path) -> None:
    refused = submit_ghz(tmp_path, config(max_channels=0))
    assert isinstance(refused, QuotaError)
    assert refused.code == "QS1006" and refused.details["limit"] == "max_channels"


def test_a_single_module_machine_still_refuses_what_it_cannot_hold(tmp_path: Path) -> None:
    refused = submit_ghz(tmp_path, config(modules=1), n=13)  # 13 x 162 > 2000
    assert isinstance(refused, AdmissionError)
    assert "the machine has 2000" in refused.message


def test_a_job_no_placement_over_the_modules_holds_is_refused(tmp_path: Path) -> None:
    refused = submit_ghz(tmp_path, config(), n=11)  # 11 > 4 + 4 places besides the pairs'
    assert isinstance(refused, AdmissionError)
    assert refused.code == "QS1007" and "nor the 2 modules up" in refused.message


def test_a_spanning_job_holds_every_module_up_and_waits_for_them_idle() -> None:
    device = LogicalMachine(physical_qubits=2000, modules=2)
    placement = Placement(device)
    small = SimpleNamespace(job_id="small", physical_qubits=500)
    big = SimpleNamespace(job_id="big", physical_qubits=1500)
    placement.reserve(small)
    assert not placement.fits(big)  # module 0 is busy
    placement.release(small)
    assert placement.fits(big)
    placement.reserve(big)
    assert placement.spanning == {"big": (0, 1)}
    assert placement.room(big) == 2000
    assert not placement.fits(small)  # nothing runs beside it
    assert placement.jobs_on(1) == ["big"]
    placement.release(big)
    assert placement.fits(small) and dict(placement.used) == {0: 0, 1: 0}


@pytest.mark.parametrize("down", [0, 1])
def test_a_spanning_job_does_not_fit_a_machine_with_a_module_down(down: int) -> None:
    device = LogicalMachine(physical_qubits=2000, modules=2)
    device.fail(down, 1)
    placement = Placement(device)
    assert not placement.fits(SimpleNamespace(job_id="big", physical_qubits=1500))
