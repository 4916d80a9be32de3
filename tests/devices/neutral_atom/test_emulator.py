"""The emulator end to end: prototype wire jobs, seeds, both backends, results' shapes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom import presets, run_job
from qmk.devices.neutral_atom.job import parse_job
from support.neutral_atom import assert_counts_match, gate, job, measure, wait

DATA = Path(__file__).with_name("data")
PROTOTYPE_JOBS = sorted(DATA.glob("prototype_*.json"))


def ghz(n: int, **fields):
    ops = [gate("H", 0)]
    for i in range(n - 1):
        ops += [gate("H", i + 1), gate("CZ", i, i + 1), gate("H", i + 1)]
    return job(n, *ops, **fields)


@pytest.mark.parametrize("path", PROTOTYPE_JOBS, ids=lambda p: p.stem)
def test_prototype_wire_jobs_load_unchanged_and_run(path):
    data = json.loads(path.read_text())
    result = run_job(data, seed=1)
    assert result.status == "completed"
    assert result.shots == data["shots"]
    assert result.device_id == data["device_id"]
    measured = sum(len(op["targets"]) for op in data["program"] if op["op"] == "Measure")
    assert result.bits.shape == (data["shots"], measured)
    records = result.measurements()
    assert len(records) == data["shots"] * len(result.records)
    assert set(records[0]) == {"targets", "bits"}


def test_the_prototype_bell_job_gives_bell_statistics():
    data = json.loads((DATA / "prototype_bell_client.json").read_text())
    result = run_job(data, seed=2)
    assert_counts_match(result.counts(), {"00": 0.5, "11": 0.5})


def test_the_parallel_example_of_the_prototype_schedules_one_two_qubit_gate_at_a_time():
    data = json.loads((DATA / "prototype_parallel_square.json").read_text())
    timeline = run_job(data, seed=1).timeline
    cx = [e for e in timeline.entries if e.op == "ApplyGate" and len(e.atoms) == 2]
    h = [e for e in timeline.entries if e.op == "ApplyGate" and len(e.atoms) == 1]
    assert [e.start_ns for e in h] == [0.0, 0.0]  # one-qubit gates in parallel
    assert cx[0].start_ns == 500.0 and cx[1].start_ns == cx[0].end_ns  # cap of 1


@pytest.mark.parametrize("backend", ["state-vector", "stabilizer"])
def test_the_same_seed_gives_the_same_shots_and_another_seed_other_shots(backend):
    wire = ghz(5, profile="benchmark_chain")
    first = run_job(wire, shots=300, seed=42, backend=backend)
    again = run_job(wire, shots=300, seed=42, backend=backend)
    other = run_job(wire, shots=300, seed=43, backend=backend)
    assert np.array_equal(first.bits, again.bits)
    assert not np.array_equal(first.bits, other.bits)


def test_a_job_without_a_seed_reports_the_seed_that_repeats_it():
    wire = ghz(3, profile="benchmark_chain")
    result = run_job(wire, shots=100)
    again = run_job(wire, shots=100, seed=result.seed)
    assert np.array_equal(result.bits, again.bits)


def test_both_backends_agree_on_a_noisy_lossy_clifford_circuit():
    wire = job(
        4,
        gate("H", 0),
        gate("CX", 0, 1),
        gate("S", 1),
        gate("CZ", 1, 2),
        gate("H", 2),
        wait(20_000.0),
        gate("CX", 2, 3),
        gate("SDG", 3),
        gate("H", 3),
        profile="readout_stress",
    )
    counts = [
        run_job(wire, shots=20_000, seed=9, backend=b).counts()
        for b in ("state-vector", "stabilizer")
    ]
    keys = set(counts[0]) | set(counts[1])
    tvd = sum(abs(counts[0].get(k, 0) - counts[1].get(k, 0)) for k in keys) / 2 / 20_000
    # two samples of 20,000 from one distribution of some 60 outcomes: sampling alone
    # gives about 0.02 (0.015 at 40,000 shots, on both paths and at other seeds)
    assert tvd < 0.04
    assert any("L" in k for k in counts[0]) and any("L" in k for k in counts[1])


def test_auto_picks_the_stabilizer_for_clifford_pauli_jobs_and_the_statevector_otherwise():
    assert run_job(ghz(3, profile="benchmark_chain"), seed=1).device_id == "stabilizer"
    t_gate = job(1, gate("T", 0), profile="benchmark_chain")
    assert run_job(t_gate, seed=1).device_id == "state-vector"
    assert run_job(ghz(2, profile="noisy_square_array"), seed=1).device_id == "state-vector"


def test_the_stabilizer_refuses_a_non_clifford_gate_naming_it():
    with pytest.raises(DeviceError) as caught:
        run_job(job(1, gate("RZ", 0, param=0.3)), seed=1, backend="stabilizer")
    assert caught.value.code == "QD107" and caught.value.details["index"] == 1


def test_counts_keys_put_the_first_measure_leftmost_and_lost_atoms_as_L():
    wire = job(3, gate("X", 2), measure(2), measure(0, 1), noise={"p_loss": 0.0})
    assert run_job(wire, shots=5, seed=1).counts() == {"100": 5}
    lost = job(2, gate("X", 1), measure(1), measure(0), noise={"p_loss": 1.0})
    result = run_job(lost, shots=5, seed=1)
    assert result.counts() == {"LL": 5}
    assert result.measurements()[0] == {"targets": [1], "bits": [-1]}


def test_the_json_result_has_status_counts_measurements_timeline_and_telemetry():
    out = run_job(ghz(3, profile="ideal_small_array"), shots=10, seed=1).to_json()
    assert out["status"] == "completed"
    assert set(out["counts"]) <= {"000", "111"}
    assert len(out["measurements"]) == 10
    assert out["timeline_units"] == "us"
    assert out["timeline"][-1]["op"] == "Measure"
    assert out["timeline"][-1]["duration"] == 50.0  # 50 us
    assert out["telemetry"]["backend"] == "stabilizer"


def test_idle_time_is_real_idle_time_while_others_work():
    # Atom 1 waits 4.5 us for atom 0's ten gates before their CZ: it dephases meanwhile.
    ops = [gate("H", 1), *[gate("X", 0)] * 10, gate("CZ", 0, 1), gate("H", 1), measure(1)]
    wire = job(2, *ops, noise={"idle_rate": 1e5})
    result = run_job(wire, shots=4000, seed=12)
    pz = -math.expm1(-1e5 * 4.5e-6)
    assert_counts_match(result.counts(), {"0": 1 - pz, "1": pz})


def test_a_thousand_atom_ghz_runs_on_the_stabilizer_path():
    wire = ghz(1000, hardware={"positions": [float(i) for i in range(1000)]})
    result = run_job(wire, shots=100, seed=1)
    assert result.device_id == "stabilizer"
    assert set(result.counts()) == {"0" * 1000, "1" * 1000}


def test_every_preset_runs_a_small_program():
    for name in presets():
        result = run_job(ghz(2, profile=name), shots=20, seed=1)
        assert result.bits.shape == (20, 2)


def test_a_job_with_an_unknown_field_or_a_stim_circuit_is_refused():
    with pytest.raises(DeviceError) as caught:
        parse_job({"program": [], "stim_circuit": "H 0"})
    assert caught.value.code == "QD101"
    with pytest.raises(DeviceError) as caught:
        parse_job({"program": [], "backend": "gpu"})
    assert caught.value.code == "QD101"


def test_a_chain_program_reuses_a_few_stim_qubits_and_keeps_the_record_order():
    from qmk.devices.neutral_atom.emulator import batch_program, lower
    from qmk.devices.neutral_atom.validate import validate_job

    wire = ghz(200, hardware={"positions": [float(i) for i in range(200)]})
    wire["program"].insert(1, gate("X", 199))  # the last atom's bit is the odd one out
    parsed = parse_job(wire)
    program = batch_program(lower(parsed, validate_job(parsed)))
    assert program.circuit.num_qubits <= 3
    assert sorted(program.columns) == list(range(200))
    result = run_job(wire, shots=200, seed=4)
    assert set(result.counts()) == {"0" * 199 + "1", "1" * 199 + "0"}


def test_a_correlated_pair_error_is_a_two_qubit_channel_of_the_batch_circuit():
    # The stabilizer engine draws the correlated CZ errors itself (stim's
    # PAULI_CHANNEL_2, with the profile's matrix less its I x I entry, on the gate's
    # qubits): the device draws no errors of its own, and leaves no error sites.
    from qmk.devices.neutral_atom.emulator import batch_program, lower
    from qmk.devices.neutral_atom.validate import validate_job
    from qmk.engines.batch import Kind

    parsed = parse_job(ghz(3, profile="benchmark_chain"))
    program = batch_program(lower(parsed, validate_job(parsed)))
    matrix = [v for row in parsed.noise.correlated_gate for v in row]
    gates = [i for i in program.circuit.instructions if i.gate == "cz"]
    pairs = [i for i in program.circuit.instructions if i.kind is Kind.PAULI_CHANNEL_2]
    assert len(pairs) == len(gates) == 2
    assert all(pair.probs == tuple(matrix[1:]) for pair in pairs)
    assert [pair.qubits for pair in pairs] == [cz.qubits for cz in gates]
    assert not program.circuit.sites


def test_a_gate_skipped_in_every_shot_drops_all_its_own_losses_without_error() -> None:
    """Regression: atom 0 is lost by its X in every shot, so the CZ after it is skipped in
    every shot and every loss its own noise drew is dropped; that used to crash."""
    from qmk.devices.neutral_atom.emulator import run_job as run_wire_job

    job = {
        "job_id": "all-skipped",
        "device_id": "stabilizer",
        "program": [
            {"op": "AllocArray", "n_qubits": 2},
            {"op": "ApplyGate", "name": "X", "targets": [0], "param": 0.0},
            {"op": "ApplyGate", "name": "CZ", "targets": [0, 1], "param": 0.0},
            {"op": "Measure", "targets": [0, 1]},
        ],
        "hardware": {"positions": [0.0, 1.0], "blockade_radius": 1.5},
        "noise": {"loss_runtime": {"per_gate": 1.0, "idle_rate": 0.0}},
        "shots": 50,
    }
    result = run_wire_job(job, shots=50, seed=3)
    counts = result.counts()
    assert sum(counts.values()) == 50
    assert set(counts) == {"LL"} or all(key[0] == "L" for key in counts)
