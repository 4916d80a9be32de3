"""Every target through one submit (q_submit's ``target``) in a real in-process kernel:
a lattice-surgery job gives the in-process target's counts at its seed, is routed, cached
and replayed like any job; a device job is the neutral-atom target's; an unknown target,
and an option of another target, are refused with a code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from qmk.devices.neutral_atom.emulator import run_job
from qmk.errors import InvalidArgument, ProgramError
from qmk.execution.runs import build_request
from qmk.execution.surgery import SurgeryTarget
from qmk.frontends import read_program
from qmk.kernel.config import config_from_dict
from support.kernel import run_kernel
from support.neutral_atom import gate, job

TOFFOLI = Path(__file__).parents[1] / "ft" / "programs" / "toffoli.qasm"
KEY = "dave-key"


def config() -> Any:
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {
                "dave": {"key": KEY, "caps": ["CAP_ALLOC", "CAP_DEVICE_NA"], "max_atoms": 8}
            },
        }
    )


async def session(kernel: Any) -> str:
    reply = await kernel.q_negotiate_caps(
        tenant="dave", key=KEY, requested=["CAP_ALLOC", "CAP_DEVICE_NA"]
    )
    return str(reply.session_id)


def surgery_counts(graph: Any, shots: int, seed: int, block: str) -> dict[str, int]:
    """The in-process lattice-surgery target's counts (the kernel's machine defaults)."""
    target = SurgeryTarget()
    program = target.read(graph)
    request = build_request(program, shots=shots, seed=seed)
    request = msgspec.structs.replace(
        request, target="lattice-surgery", target_options={"block": block}
    )
    return dict(target.compile(program, request).run(shots, seed).counts)


def test_a_lattice_surgery_job_runs_in_the_kernel_as_in_process_and_replays(tmp_path):
    graph = read_program(str(TOFFOLI)).to_json()

    async def body(kernel):
        sid = await session(kernel)
        accepted = await kernel.q_submit(
            session_id=sid,
            graph=graph,
            shots=300,
            seed=11,
            policy={"block": "compact"},
            target="lattice-surgery",
        )
        done = await kernel.q_wait(session_id=sid, job_id=accepted.job_id, timeout_ms=120_000)
        again = await kernel.q_replay(session_id=sid, job_id=accepted.job_id)
        replayed = await kernel.q_wait(session_id=sid, job_id=again.job_id, timeout_ms=120_000)
        cached = await kernel.q_submit(
            session_id=sid,
            graph=graph,
            shots=300,
            seed=11,
            policy={"block": "compact"},
            target="lattice-surgery",
        )
        return done, replayed, cached

    done, replayed, cached = run_kernel(tmp_path, body, config=config())
    assert done.state == "COMPLETED", done.error
    result = done.result
    assert result["target"] == "lattice-surgery" and result["layout"]["block"] == "compact"
    assert result["counts"] == surgery_counts(graph, 300, 11, "compact")
    assert result["telemetry"]["engine_reason"]  # routed like any job
    assert replayed.result["counts"] == result["counts"]
    # the same run again is answered from the cache, as any job's
    assert cached.state == "COMPLETED" and cached.result["telemetry"]["cache_hit"]


def test_a_device_job_is_the_neutral_atom_targets_through_q_submit(tmp_path):
    wire = job(3, gate("H", 0), gate("CX", 0, 1), gate("CX", 1, 2), shots=10)

    async def body(kernel):
        sid = await session(kernel)
        accepted = await kernel.q_submit(
            session_id=sid,
            graph=wire,
            shots=200,
            seed=4,
            policy={"preset": "benchmark_chain"},
            target="neutral-atom",
        )
        return await kernel.q_wait(session_id=sid, job_id=accepted.job_id, timeout_ms=60_000)

    done = run_kernel(tmp_path, body, config=config())
    assert done.state == "COMPLETED", done.error
    expected = run_job(wire, shots=200, seed=4, device="benchmark_chain").counts()
    assert done.result["counts"] == expected and done.shots == 200


def test_a_stim_circuits_job_is_the_stim_targets_through_q_submit(tmp_path):
    import stim

    import qmk

    circuit = stim.Circuit.generated(
        "surface_code:rotated_memory_z", distance=3, rounds=3, after_clifford_depolarization=0.01
    )

    async def body(kernel):
        sid = await session(kernel)
        accepted = await kernel.q_submit(
            session_id=sid,
            graph={"stim": str(circuit)},
            shots=2000,
            seed=6,
            policy={"decode": True},
            target="stim",
        )
        return await kernel.q_wait(session_id=sid, job_id=accepted.job_id, timeout_ms=60_000)

    done = run_kernel(tmp_path, body, config=config())
    assert done.state == "COMPLETED", done.error
    here = qmk.run(circuit, shots=2000, seed=6, target_options={"decode": True})
    assert done.result["target"] == "stim"
    assert done.result["counts"] == dict(here.counts)
    assert done.result["decode"]["logical_errors"] == here.details["decode"]["logical_errors"]


@pytest.mark.parametrize(
    ("target", "policy", "error", "key_or_code"),
    [
        ("latice-surgery", None, InvalidArgument, "target"),
        ("logical", {"block": "fast"}, InvalidArgument, "policy.block"),
        ("lattice-surgery", {"precision": "single"}, ProgramError, "QM102"),
        ("lattice-surgery", {"block": "roomy"}, ProgramError, "QM102"),
        ("neutral-atom", {"engine": "statevector"}, ProgramError, "QM102"),
    ],
)
def test_a_target_or_option_no_target_takes_is_refused_at_submit(
    tmp_path, target, policy, error, key_or_code
):
    graph = read_program(str(TOFFOLI)).to_json()
    wire = job(2, gate("H", 0), shots=10, profile="benchmark_chain")

    async def body(kernel):
        sid = await session(kernel)
        with pytest.raises(error) as caught:
            await kernel.q_submit(
                session_id=sid,
                graph=wire if target == "neutral-atom" else graph,
                shots=10,
                policy=policy,
                target=target,
            )
        return caught.value

    refused = run_kernel(tmp_path, body, config=config())
    details = refused.details
    assert details.get("key") == key_or_code or details.get("code") == key_or_code, refused


def test_each_jobs_footprint_is_its_targets_for_its_own_run_whatever_came_before(tmp_path):
    # admission keeps a small program's footprint by its run less the seed: each job's
    # is still the one its target compiles for its request (shots, block and all)
    from qmk.execution import target as targets
    from qmk.kernel.records.programs import verified
    from support.kernel import BELL

    toffoli = read_program(str(TOFFOLI)).to_json()
    submits = [
        {"graph": BELL, "shots": 10, "seed": 1},
        {"graph": BELL, "shots": 10, "seed": 2},
        {"graph": BELL, "shots": 20, "seed": 2},
        {"graph": toffoli, "shots": 10, "seed": 1, "target": "lattice-surgery"},
        {"graph": toffoli, "shots": 10, "seed": 2, "target": "lattice-surgery"},
        {"graph": toffoli, "shots": 20, "seed": 2, "target": "lattice-surgery"},
        {
            "graph": toffoli,
            "shots": 20,
            "seed": 3,
            "target": "lattice-surgery",
            "policy": {"block": "compact"},
        },
    ]

    async def body(kernel):
        sid = await session(kernel)
        jobs = []
        for submit in submits:
            accepted = await kernel.q_submit(session_id=sid, **submit)
            await kernel.q_wait(session_id=sid, job_id=accepted.job_id, timeout_ms=120_000)
            jobs.append(kernel.supervisor.finished[accepted.job_id])
        return jobs

    jobs = run_kernel(tmp_path, body, config=config())
    for ended in jobs:
        assert ended.state == "COMPLETED", ended.error
        own = targets.get(ended.request.target).compile(verified(ended.graph), ended.request)
        assert ended.footprint == own.footprint, ended.request
    assert jobs[3].footprint != jobs[6].footprint  # another block: another footprint
