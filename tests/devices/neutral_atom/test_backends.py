"""Backends per job (issue 30, item 5): the table, its capability metadata, and each
backend's results against exact theory."""

from __future__ import annotations

import io
import json
import math

import pytest

from qmk.cli import main
from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom import run_job
from qmk.devices.neutral_atom.backends import BACKENDS, capabilities, capability_table
from qmk.devices.neutral_atom.job import DEVICE_IDS
from qmk.devices.neutral_atom.profiles import Profile
from qmk.engines.registry import gpu_present
from support.neutral_atom import DensityMatrix, assert_counts_match, gate, job, measure

NON_STABILIZER = ["state-vector", "mps"]


def wide_chain(n: int) -> Profile:
    return Profile.from_json(
        {"name": f"chain_{n}", "lattice": {"kind": "chain", "n": n, "spacing": 2.0}}
    )


def rotated_ghz(n: int, theta: float) -> dict:
    ops = [gate("RY", 0, param=theta)]
    ops += [gate("CX", i, i + 1) for i in range(n - 1)]
    return job(n, *ops)


def test_every_backend_a_job_may_name_is_in_the_table_with_its_engine():
    assert set(DEVICE_IDS) == {*BACKENDS, "auto"}
    for row in capability_table():
        assert row["name"] in BACKENDS and row["engine"] == BACKENDS[row["name"]].engine
        assert {"available", "max_atoms", "gates", "noise", "analog", "gpu"} <= set(row)
    assert capabilities("stabilizer")["gates"] == "Clifford gates"
    assert [r["name"] for r in capability_table() if r["analog"]] == ["state-vector"]
    assert capabilities("gpu-state-vector")["available"] is gpu_present()


def test_mps_runs_a_sixty_atom_rotated_ghz_with_the_exact_distribution():
    n, theta = 60, 1.1
    result = run_job(rotated_ghz(n, theta), device=wide_chain(n), shots=3000, seed=4, backend="mps")
    assert result.device_id == "mps" and result.telemetry["backend"] == "mps"
    p1 = math.sin(theta / 2) ** 2
    assert_counts_match(result.counts(), {"0" * n: 1 - p1, "1" * n: p1})


def test_the_cpu_statevector_refuses_sixty_atoms_and_names_the_backends_that_hold_them():
    with pytest.raises(DeviceError) as caught:
        run_job(
            rotated_ghz(60, 1.1), device=wide_chain(60), shots=10, seed=1, backend="state-vector"
        )
    assert caught.value.code == "QD107" and "mps" in caught.value.message


@pytest.mark.parametrize("backend", NON_STABILIZER)
def test_damping_and_a_mid_circuit_measurement_follow_the_exact_law(backend):
    # X then damping 0.5: the first measurement reads 1 half the time; whichever state it
    # leaves, H then damping 0.5 gives P(1) = 0.25 at the second (the dilation's ancilla
    # is measured mid-circuit on every backend but the stabilizer).
    wire = job(
        1,
        gate("X", 0),
        measure(0),
        gate("H", 0),
        measure(0),
        noise={"amplitude_damping": {"per_gate": 0.5}},
    )
    result = run_job(wire, shots=4000, seed=22, backend=backend)
    assert result.device_id == backend
    assert_counts_match(result.counts(), {"00": 0.375, "01": 0.125, "10": 0.375, "11": 0.125})


@pytest.mark.parametrize("backend", NON_STABILIZER)
def test_a_t_gate_between_hadamards_under_pauli_noise_matches_the_density_matrix(backend):
    noise = {"gate": {"single_qubit": {"px": 0.1, "py": 0.05, "pz": 0.2}}}
    wire = job(2, gate("H", 0), gate("T", 0), gate("H", 0), gate("CX", 0, 1), noise=noise)
    result = run_job(wire, shots=4000, seed=8, backend=backend)
    dm = DensityMatrix(2)
    for name in ("h", "t", "h"):
        dm.gate(name, [0])
        dm.pauli1(0, 0.1, 0.05, 0.2)
    dm.gate("cx", [0, 1])
    assert_counts_match(result.counts(), dm.probabilities([0, 1]))


def test_an_analog_job_on_another_backend_than_the_state_vector_is_refused():
    wire = {
        "isa_version": "1.2",
        "hardware": {"positions": [0.0]},
        "program": [
            {"op": "AllocArray", "n_qubits": 1},
            {
                "op": "Evolve",
                "duration": 100,
                "omega": [[0, 5.0], [100, 5.0]],
                "delta": [[0, 0], [100, 0]],
            },
            {"op": "Measure", "targets": [0]},
        ],
    }
    with pytest.raises(DeviceError) as caught:
        run_job(wire, shots=10, seed=1, backend="mps")
    assert caught.value.code == "QD110"


@pytest.mark.skipif(gpu_present(), reason="a GPU is present: the GPU backend runs here")
def test_the_gpu_backend_is_refused_with_the_reason_where_there_is_no_gpu():
    with pytest.raises(DeviceError) as caught:
        run_job(
            job(2, gate("H", 0), gate("CX", 0, 1)), shots=10, seed=1, backend="gpu-state-vector"
        )
    assert caught.value.code == "QD113" and "GPU" in caught.value.message


@pytest.mark.skipif(
    not capabilities("gpu-state-vector")["available"],
    reason=capabilities("gpu-state-vector")["reason"] or "no GPU backend",
)
def test_the_gpu_backend_gives_the_exact_distribution_where_a_gpu_is():
    theta = 0.7
    result = run_job(rotated_ghz(3, theta), shots=4000, seed=2, backend="gpu-state-vector")
    p1 = math.sin(theta / 2) ** 2
    assert_counts_match(result.counts(), {"000": 1 - p1, "111": p1})


def test_device_show_lists_every_backend_with_what_it_can_do(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    assert main(["device", "show", "ideal_small_array", "--json"], stdout=out, stderr=err) == 0
    shown = json.loads(out.getvalue())["backends"]
    assert [b["name"] for b in shown] == list(BACKENDS)
    out = io.StringIO()
    assert main(["device", "show", "ideal_small_array"], stdout=out, stderr=err) == 0
    text = out.getvalue()
    for name in BACKENDS:
        assert f"\n    {name} " in text
    assert "1000 atoms; every ISA gate" in text


def test_device_run_takes_the_mps_backend(tmp_path):
    path = tmp_path / "job.json"
    path.write_text(
        json.dumps(
            job(3, gate("H", 0), gate("CX", 0, 1), gate("CX", 1, 2), profile="ideal_small_array")
        )
    )
    out, err = io.StringIO(), io.StringIO()
    assert (
        main(
            [
                "device",
                "run",
                str(path),
                "--backend",
                "mps",
                "--shots",
                "200",
                "--seed",
                "3",
                "--json",
            ],
            stdout=out,
            stderr=err,
        )
        == 0
    )
    result = json.loads(out.getvalue())
    assert result["device_id"] == "mps" and set(result["counts"]) == {"000", "111"}
