"""A noisy device job on a small register runs its trajectories as one stack of state
vectors (many shots a numpy pass), and its shots are those of the noisy circuit: its
counts pass a chi-square test against the exact density matrix of the same lowered
circuit, built with numpy from the noise IR's own Kraus operators."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from qmk.devices.neutral_atom.circuit import StepKind, lower
from qmk.devices.neutral_atom.emulator import choose_backend, run_job
from qmk.devices.neutral_atom.job import parse_job
from qmk.devices.neutral_atom.noise import NoiseKind
from qmk.devices.neutral_atom.shots import (
    CHUNK_WORK,
    chunk_shots,
    shot_work,
    stacks_pay,
)
from qmk.devices.neutral_atom.validate import validate_job
from support.neutral_atom import (
    chi_square_p,
    circuit_distribution,
    gate,
    job,
    measure,
    noisy_snake,
)

#: Every noise the device has but loss, strong enough that nearly every shot meets some.
NOISE: dict[str, Any] = {
    "gate": {
        "single_qubit": {"px": 0.02, "py": 0.01, "pz": 0.03},
        "two_qubit_control": {"px": 0.01, "py": 0.02, "pz": 0.01},
        "two_qubit_target": {"px": 0.02, "py": 0.01, "pz": 0.02},
    },
    "correlated_gate": {
        "matrix": [
            [0.0, 0.01, 0.0, 0.02],
            [0.0, 0.01, 0.0, 0.0],
            [0.005, 0.0, 0.01, 0.0],
            [0.02, 0.0, 0.0, 0.03],
        ]
    },
    "amplitude_damping": {"per_gate": 0.04, "idle_rate": 2000.0},
    "idle_rate": 3000.0,
    "p_prep": 0.02,
    "p_quantum_flip": 0.01,
    "readout": {"p_flip0_to_1": 0.02, "p_flip1_to_0": 0.04},
}


def noisy_program() -> dict[str, Any]:
    """Six atoms: rotations, T, CX and CZ, a mid-circuit measurement and a reset of atom
    1, more gates on it, then every atom measured."""
    return job(
        6,
        gate("H", 0),
        gate("RX", 1, param=0.7),
        gate("T", 0),
        gate("CX", 0, 1),
        gate("RY", 2, param=1.1),
        gate("CZ", 1, 2),
        gate("CX", 2, 3),
        gate("H", 4),
        gate("CX", 3, 4),
        gate("CX", 4, 5),
        measure(1),
        {"op": "Reset", "targets": [1]},
        gate("H", 1),
        gate("CX", 1, 2),
        gate("RZ", 2, param=0.4),
        gate("H", 2),
        measure(0, 1, 2, 3, 4, 5),
        noise=NOISE,
        profile="ideal_small_array",
        isa_version={"major": 1, "minor": 1},
    )


def test_a_noisy_job_with_damping_a_mid_circuit_reset_and_readout_matches_its_density_matrix():
    wire = noisy_program()
    shots, seed = 100_000, 2026
    parsed = parse_job(wire, shots=shots, seed=seed)
    circuit = lower(parsed, validate_job(parsed))
    assert stacks_pay("state-vector", circuit)
    result = run_job(wire, shots=shots, seed=seed)
    assert result.device_id == "state-vector"
    assert result.telemetry["mode"] == "stacked"
    counts = result.counts()
    expected = circuit_distribution(circuit)
    assert len(expected) == 2**7 and abs(sum(expected.values()) - 1) < 1e-9
    p = chi_square_p(counts, expected)
    assert p > 1e-3, f"chi-square p = {p:.2e} at {shots} shots, seed {seed}"


def test_the_check_tells_the_law_from_one_with_less_damping():
    # the same counts against the law without the damping after the reset: the chi-square
    # at 10^5 shots sees the difference
    wire = noisy_program()
    parsed = parse_job(wire, shots=100_000, seed=2026)
    circuit = lower(parsed, validate_job(parsed))
    reset = next(k for k, s in enumerate(circuit.steps) if s.kind is StepKind.RESET)
    undamped = dataclasses.replace(
        circuit,
        steps=tuple(
            s
            for k, s in enumerate(circuit.steps)
            if k < reset or s.noise is None or s.noise.kind is not NoiseKind.DAMP
        ),
    )
    assert len(undamped.steps) < len(circuit.steps)
    counts = run_job(wire, shots=100_000, seed=2026).counts()
    assert chi_square_p(counts, circuit_distribution(undamped)) < 1e-6


def test_a_noisy_ten_atom_job_runs_stacked_in_chunks_within_the_work_bound():
    wire = noisy_snake(10, 20_000)
    parsed = parse_job(wire)
    circuit = lower(parsed, validate_job(parsed))
    backend = choose_backend(parsed, circuit)
    assert backend == "state-vector" and stacks_pay(backend, circuit)
    size = chunk_shots(backend, circuit)
    assert size * shot_work(backend, circuit) <= CHUNK_WORK
    assert 20_000 // size >= 8  # a pause point every chunk: many in this job


@pytest.mark.parametrize("n", [10, 16])
def test_every_state_vector_chunk_holds_at_most_the_work_bound(n):
    wire = noisy_snake(n, 4096)
    parsed = parse_job(wire)
    circuit = lower(parsed, validate_job(parsed))
    size = chunk_shots("state-vector", circuit)
    assert size == 1 or size * shot_work("state-vector", circuit) <= CHUNK_WORK


def test_a_noiseless_job_stays_one_trajectory_of_the_runner():
    wire = {**noisy_snake(10, 2000), "profile": "ideal_square_grid"}
    result = run_job(wire)
    assert result.telemetry["mode"] == "sampled"
    assert result.telemetry["simulations"] == 1
