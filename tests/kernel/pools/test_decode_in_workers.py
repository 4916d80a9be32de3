"""A job's decoding runs in its worker, never in the kernel process.

A stim circuit's ``decode`` builds pymatching's decoder of the circuit's detector error
model and matches every shot's detection events: work that grows with the circuit's
rounds. The kernel only reads the circuit and prices its footprint; the worker builds the
decoder and decodes, under its memory and time limits. These tests run a real ``qmk
serve`` and look at its process from outside: the shared objects it maps
(``/proc/PID/maps``) never include pymatching's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import stim

import qmk
from qmk.client import Client
from support.kernel import TENANTS, serve_factory, stop_all

SEED = 6


def memory_circuit(rounds: int = 3) -> stim.Circuit:
    return stim.Circuit.generated(
        "repetition_code:memory", distance=3, rounds=rounds, after_clifford_depolarization=0.02
    )


def maps_pymatching(pid: int) -> bool:
    """Whether process ``pid`` has pymatching's extension module mapped."""
    return "pymatching" in Path(f"/proc/{pid}/maps").read_text()


def served_decode(tmp_path: Path, circuit: stim.Circuit, policy: dict[str, Any]) -> tuple[Any, str]:
    """A decoded 2000-shot job of ``circuit`` through a real ``qmk serve``: its final
    status, and the kernel process's maps after it."""
    serve, started = serve_factory(tmp_path)
    try:
        server = serve()
        with Client.connect(
            str(server.socket), tenant="alice", key=TENANTS["alice"]["key"]
        ) as client:
            job = client.q_submit({"stim": str(circuit)}, 2000, SEED, policy=policy, target="stim")
            done = client.q_wait(job.job_id, 120_000)
        mapped = Path(f"/proc/{server.pid}/maps").read_text()
    finally:
        stop_all(started)
    return done, mapped


def test_a_decoded_job_gives_qmk_runs_result_and_the_kernel_never_maps_pymatching(
    tmp_path: Path,
) -> None:
    circuit = memory_circuit()
    done, mapped = served_decode(tmp_path, circuit, {"decode": True})
    assert done.state == "COMPLETED", done.error
    here = qmk.run(str(circuit), shots=2000, seed=SEED, target_options={"decode": True})
    assert done.result["decode"]["logical_errors"] == here.details["decode"]["logical_errors"]
    assert done.result["counts"] == dict(here.counts)
    assert "pymatching" not in mapped


def test_a_bposd_decoded_job_names_its_decoder_and_the_kernel_never_maps_ldpc(
    tmp_path: Path,
) -> None:
    circuit = memory_circuit()
    done, mapped = served_decode(tmp_path, circuit, {"decoder": "bposd"})
    assert done.state == "COMPLETED", done.error
    here = qmk.run(str(circuit), shots=2000, seed=SEED, target_options={"decoder": "bposd"})
    assert done.result["decode"]["decoder"] == "bposd"
    assert done.result["decode"]["logical_errors"] == here.details["decode"]["logical_errors"]
    assert "ldpc" not in mapped


def test_a_decode_past_its_workers_memory_fails_the_job_memory_limit_and_the_kernel_serves_on(
    tmp_path: Path,
) -> None:
    # 100,000 rounds of a distance-5 surface code: 6 KB of text, a decoder of about 2 GB
    bomb = stim.Circuit.generated(
        "surface_code:rotated_memory_z",
        distance=5,
        rounds=100_000,
        after_clifford_depolarization=0.001,
    )
    serve, started = serve_factory(tmp_path)
    try:
        server = serve(kernel={"worker_memory_mb": 1024})
        with (
            Client.connect(str(server.socket), tenant="alice", key=TENANTS["alice"]["key"]) as a,
            Client.connect(str(server.socket), tenant="bob", key=TENANTS["bob"]["key"]) as b,
        ):
            job = a.q_submit({"stim": str(bomb)}, 4, SEED, policy={"decode": True}, target="stim")
            done = a.q_wait(job.job_id, 300_000)
            small = b.q_submit(
                {"stim": str(memory_circuit())},
                100,
                SEED,
                policy={"decode": True},
                target="stim",
                wait_ms=120_000,
            )
        mapped = maps_pymatching(server.pid)
    finally:
        stop_all(started)
    assert done.state == "FAILED"
    assert done.error.code == "QK201", done.error  # memory-limit
    assert small.state == "COMPLETED", small.error
    assert not mapped
