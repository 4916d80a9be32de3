"""Every noise channel against exact density-matrix values, on both backends where it applies.

Each run states its seed; ``assert_counts_match`` is a chi-square test at alpha 1e-4, so a
correct sampler fails it at that seed with probability below 1e-4 (and the seed fixes it).
"""

from __future__ import annotations

import math

import pytest

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.emulator import run_job
from qmk.devices.neutral_atom.noise import NoiseModel, dephasing_probability
from support.frontends import homogeneity_p
from support.neutral_atom import DensityMatrix, assert_counts_match, gate, job, measure, wait

SHOTS = 4000
BOTH = pytest.mark.parametrize("backend", ["state-vector", "stabilizer"])


def run(wire, backend="state-vector", shots=SHOTS, seed=11):
    return run_job(wire, shots=shots, seed=seed, backend=backend)


@BOTH
def test_one_qubit_pauli_noise_after_a_gate(backend):
    noise = {"gate": {"single_qubit": {"px": 0.1, "py": 0.05, "pz": 0.2}}}
    result = run(job(1, gate("H", 0), gate("H", 0), noise=noise), backend)
    dm = DensityMatrix(1)
    for _ in range(2):
        dm.gate("h", [0])
        dm.pauli1(0, 0.1, 0.05, 0.2)
    assert_counts_match(result.counts(), dm.probabilities([0]))


@BOTH
def test_two_qubit_pauli_noise_on_control_and_target(backend):
    noise = {
        "gate": {
            "two_qubit_control": {"px": 0.1, "py": 0.02, "pz": 0.0},
            "two_qubit_target": {"px": 0.0, "py": 0.15, "pz": 0.3},
        }
    }
    result = run(job(2, gate("X", 0), gate("CX", 0, 1), noise=noise), backend)
    dm = DensityMatrix(2)
    dm.gate("x", [0])
    dm.gate("cx", [0, 1])
    dm.pauli1(0, 0.1, 0.02, 0.0)
    dm.pauli1(1, 0.0, 0.15, 0.3)
    assert_counts_match(result.counts(), dm.probabilities([0, 1]))


@BOTH
def test_correlated_two_qubit_pauli_from_the_4x4_matrix(backend):
    matrix = [[0.0] * 4 for _ in range(4)]
    matrix[1][1] = 0.1  # XX
    matrix[1][0] = 0.05  # XI
    matrix[0][2] = 0.07  # IY
    matrix[3][3] = 0.2  # ZZ
    matrix[2][1] = 0.04  # YX
    noise = {"correlated_gate": {"matrix": matrix}}
    result = run(job(2, gate("H", 0), gate("CZ", 0, 1), gate("H", 0), noise=noise), backend)
    dm = DensityMatrix(2)
    dm.gate("h", [0])
    dm.gate("cz", [0, 1])
    dm.pauli2(0, 1, {"XX": 0.1, "XI": 0.05, "IY": 0.07, "ZZ": 0.2, "YX": 0.04})
    dm.gate("h", [0])
    assert_counts_match(result.counts(), dm.probabilities([0, 1]))


@BOTH
def test_a_correlated_pair_error_before_a_mid_circuit_measurement_and_reset(backend):
    # On the stabilizer path the pair error is a two-qubit channel of the batch circuit
    # (stim's PAULI_CHANNEL_2), felt through the measurement and the reset; the
    # state-vector path splits its shots at the measurement. Both against the exact
    # two-stage distribution.
    matrix = [[0.0] * 4 for _ in range(4)]
    matrix[1][1] = 0.15  # XX
    matrix[0][1] = 0.1  # IX
    matrix[3][2] = 0.05  # ZY
    probs = {"XX": 0.15, "IX": 0.1, "ZY": 0.05}
    entangle = [gate("H", 0), gate("CZ", 0, 1), gate("H", 0)]
    ops = [*entangle, measure(0, 1), {"op": "Reset", "targets": [0]}, *entangle, measure(0, 1)]
    result = run(job(2, *ops, noise={"correlated_gate": {"matrix": matrix}}), backend, seed=21)

    def stage(b: int) -> dict[str, float]:
        dm = DensityMatrix(2)
        if b:
            dm.gate("x", [1])
        dm.gate("h", [0])
        dm.gate("cz", [0, 1])
        dm.pauli2(0, 1, probs)
        dm.gate("h", [0])
        return dm.probabilities([0, 1])

    first = stage(0)
    expected = {
        ab + cd: p_ab * p_cd for ab, p_ab in first.items() for cd, p_cd in stage(int(ab[1])).items()
    }
    assert_counts_match(result.counts(), expected)


def test_damping_before_and_after_a_mid_circuit_measurement():
    # X then damping 0.5: the first measurement reads 1 half the time; whichever state it
    # leaves, H then damping 0.5 gives P(1) = 0.25 at the second.
    wire = job(
        1,
        gate("X", 0),
        measure(0),
        gate("H", 0),
        measure(0),
        noise={"amplitude_damping": {"per_gate": 0.5}},
    )
    result = run(wire, "state-vector", shots=4000, seed=22)
    assert_counts_match(result.counts(), {"00": 0.375, "01": 0.125, "10": 0.375, "11": 0.125})


@BOTH
def test_asymmetric_readout_flips_recorded_bits(backend):
    noise = {"readout": {"p_flip0_to_1": 0.03, "p_flip1_to_0": 0.2}}
    result = run(job(2, gate("X", 1), noise=noise), backend)
    p01, p10 = 0.03, 0.2
    expected = {
        "00": (1 - p01) * p10,
        "01": (1 - p01) * (1 - p10),
        "10": p01 * p10,
        "11": p01 * (1 - p10),
    }
    assert_counts_match(result.counts(), expected)


@BOTH
def test_state_preparation_error(backend):
    result = run(job(1, noise={"p_prep": 0.12}), backend)
    assert_counts_match(result.counts(), {"0": 0.88, "1": 0.12})


@BOTH
def test_quantum_flip_before_measurement(backend):
    result = run(job(1, gate("X", 0), noise={"p_quantum_flip": 0.3}), backend)
    assert_counts_match(result.counts(), {"0": 0.3, "1": 0.7})


@BOTH
def test_loss_at_measurement_reads_minus_one_and_the_atom_stays_lost(backend):
    wire = job(1, gate("X", 0), measure(0), measure(0), noise={"p_loss": 0.25})
    result = run(wire, backend)
    # First measure: lost with 0.25; the second reads L whenever the first did.
    assert_counts_match(result.counts(), {"LL": 0.25, "1L": 0.75 * 0.25, "11": 0.75 * 0.75})


@BOTH
def test_runtime_loss_per_gate_on_each_target(backend):
    wire = job(
        2, gate("X", 0), gate("X", 0), gate("H", 1), noise={"loss_runtime": {"per_gate": 0.1}}
    )
    result = run(wire, backend)
    lost0 = 1 - 0.9**2
    lost1 = 0.1
    expected = {}
    for a, pa in (("L", lost0), ("0", 1 - lost0)):
        for b, pb in (("L", lost1), ("0", (1 - lost1) / 2), ("1", (1 - lost1) / 2)):
            expected[a + b] = pa * pb
    assert_counts_match(result.counts(), expected)


@BOTH
def test_idle_loss_is_a_rate_per_second_over_the_wait(backend):
    # 10^4 per second over a 50 us wait: 1 - exp(-0.5) = 0.393, not every atom.
    wire = job(3, wait(50_000.0), noise={"loss_runtime": {"idle_rate": 1e4}})
    result = run(wire, backend)
    p = -math.expm1(-1e4 * 50e-6)
    lost = (result.bits == -1).mean()
    assert 0.3 < p < 0.5
    assert abs(lost - p) < 4 * math.sqrt(p * (1 - p) / result.bits.size)


@BOTH
def test_idle_dephasing_rate_per_second(backend):
    wire = job(1, gate("H", 0), wait(50_000.0), gate("H", 0), noise={"idle_rate": 1e4})
    result = run(wire, backend)
    pz = -math.expm1(-1e4 * 50e-6)
    assert_counts_match(result.counts(), {"0": 1 - pz, "1": pz})


@BOTH
def test_idle_phase_drift_is_its_dephasing_channel(backend):
    # phase.idle is radians per second: a 50 us wait kicks by up to 2 radians.
    wire = job(1, gate("H", 0), wait(50_000.0), gate("H", 0), noise={"phase": {"idle": 4e4}})
    result = run(wire, backend)
    pz = dephasing_probability(2.0)
    assert_counts_match(result.counts(), {"0": 1 - pz, "1": pz})


def test_noise_no_record_sees_is_left_out_and_the_counts_stay_the_stabilizers():
    # The statevector's runner leaves out Z errors on atoms waiting in |0> and Z errors
    # with no gate on their atom before its measurement (no record sees them); the
    # stabilizer's batch circuit keeps every channel: the same distribution, two ways.
    pair = {"px": 0.02, "py": 0.01, "pz": 0.03}
    noise = {"idle_rate": 2e4, "gate": {"two_qubit_control": pair, "two_qubit_target": pair}}
    wire = job(
        4,
        gate("H", 0),
        wait(20_000.0),
        gate("CX", 0, 1),
        gate("CX", 1, 2),
        wait(20_000.0),
        gate("CX", 2, 3),
        gate("H", 3),
        wait(20_000.0),
        noise=noise,
    )
    statevector = run(wire, "state-vector", seed=12).counts()
    stabilizer = run(wire, "stabilizer", seed=13).counts()
    p = homogeneity_p(statevector, stabilizer)
    assert p > 1e-4, (p, statevector, stabilizer)


def test_amplitude_damping_after_x_then_h_gives_a_quarter():
    # The prototype's bug: a non-unitary matrix with no Kraus sampling gave P(1) = 0.
    wire = job(1, gate("X", 0), gate("H", 0), noise={"amplitude_damping": {"per_gate": 0.5}})
    result = run(wire, "state-vector", shots=6000, seed=5)
    dm = DensityMatrix(1)
    dm.gate("x", [0])
    dm.damp(0, 0.5)
    dm.gate("h", [0])
    dm.damp(0, 0.5)
    assert dm.probabilities([0])["1"] == pytest.approx(0.25)
    assert_counts_match(result.counts(), dm.probabilities([0]))


def test_idle_amplitude_damping_is_t1_decay():
    wire = job(1, gate("X", 0), wait(50_000.0), noise={"amplitude_damping": {"idle_rate": 1e4}})
    result = run(wire, "state-vector", shots=3000, seed=6)
    survive = math.exp(-1e4 * 50e-6)
    assert_counts_match(result.counts(), {"1": survive, "0": 1 - survive})


def test_damping_of_a_superposition_keeps_its_coherence_right():
    # H, damp, H: the Kraus branches (not a Pauli twirl) give P(1) = (1 - sqrt(1-g))/2 - ...
    gamma = -math.expm1(-2e4 * 50e-6)
    wire = job(
        1,
        gate("H", 0),
        wait(50_000.0),
        gate("H", 0),
        noise={"amplitude_damping": {"idle_rate": 2e4}},
    )
    result = run(wire, "state-vector", shots=4000, seed=8)
    dm = DensityMatrix(1)
    dm.gate("h", [0])
    dm.damp(0, gamma)
    dm.gate("h", [0])
    assert_counts_match(result.counts(), dm.probabilities([0]))


def test_damping_on_an_entangled_pair():
    wire = job(
        2,
        gate("H", 0),
        gate("CX", 0, 1),
        gate("H", 1),
        noise={"amplitude_damping": {"per_gate": 0.3}},
    )
    result = run(wire, "state-vector", shots=4000, seed=9)
    dm = DensityMatrix(2)
    dm.gate("h", [0])
    dm.damp(0, 0.3)
    dm.gate("cx", [0, 1])
    dm.gate("h", [1])
    dm.damp(1, 0.3)
    assert_counts_match(result.counts(), dm.probabilities([0, 1]))


def test_the_stabilizer_backend_refuses_amplitude_damping_with_its_instruction():
    wire = job(1, gate("X", 0), noise={"amplitude_damping": {"per_gate": 0.1}})
    with pytest.raises(DeviceError) as caught:
        run(wire, "stabilizer")
    assert caught.value.code == "QD107"
    assert caught.value.details["index"] == 1


@BOTH
def test_a_lost_atom_takes_no_part_in_later_gates(backend):
    # Atom 0 is |1>, lost at its measurement with 0.5. Kept, it reads 1 and the CZ makes
    # H-CZ-H flip atom 1; lost, the CZ is skipped and atom 1 stays 0 (a CZ with the lost
    # atom would give "L1"). Atom 1's own measurement loses it with 0.5 too.
    wire = job(
        2,
        gate("X", 0),
        measure(0),
        gate("H", 1),
        gate("CZ", 0, 1),
        gate("H", 1),
        measure(1),
        noise={"p_loss": 0.5},
    )
    result = run(wire, backend, seed=4)
    assert_counts_match(result.counts(), {"L0": 0.25, "LL": 0.25, "11": 0.25, "1L": 0.25})


@BOTH
def test_a_runtime_loss_skips_the_partner_gate_and_its_noise(backend):
    noise = {"loss_runtime": {"per_gate": 0.5}, "gate": {"two_qubit_target": {"px": 1.0}}}
    wire = job(2, gate("X", 0), gate("CZ", 0, 1), measure(1), noise=noise)
    result = run(wire, backend, shots=4000, seed=3)
    # Atom 0 is lost after X with 0.5: then the CZ (and the target's X error) is skipped
    # and atom 1 reads 0; otherwise the X error flips it to 1 and the CZ's own loss on
    # atom 1 (0.5) may hide it.
    assert_counts_match(result.counts(), {"0": 0.5, "1": 0.25, "L": 0.25})


def test_noise_values_out_of_range_are_refused():
    for bad in (
        {"p_loss": 1.5},
        {"idle_rate": -1.0},
        {"gate": {"single_qubit": {"px": 0.7, "py": 0.7}}},
        {"correlated_gate": {"matrix": [[0.5] * 4] * 4}},
    ):
        with pytest.raises(DeviceError) as caught:
            NoiseModel.from_json(bad)
        assert caught.value.code == "QD108"
    with pytest.raises(DeviceError) as caught:
        NoiseModel.from_json({"t1": 3.0})
    assert caught.value.code == "QD101"


def test_the_wire_noise_model_round_trips():
    data = {
        "p_quantum_flip": 0.01,
        "p_loss": 0.02,
        "readout": {"p_flip0_to_1": 0.03, "p_flip1_to_0": 0.04},
        "gate": {"single_qubit": {"px": 0.001, "py": 0.0, "pz": 0.0}},
        "idle_rate": 120.0,
        "amplitude_damping": {"per_gate": 0.001, "idle_rate": 0.08},
        "loss_runtime": {"per_gate": 0.0, "idle_rate": 5.0},
    }
    model = NoiseModel.from_json(data)
    assert NoiseModel.from_json(model.to_json()) == model


@BOTH
def test_gate_phase_kicks_are_their_dephasing_channels(backend):
    # A kick uniform in [-1.2, 1.2] rad after each of two H gates on one atom, and after a
    # CZ on both atoms (magnitudes per role).
    noise = {"phase": {"single_qubit": 1.2, "two_qubit_control": 0.9, "two_qubit_target": 2.0}}
    result = run(job(1, gate("H", 0), gate("H", 0), noise=noise), backend)
    dm = DensityMatrix(1)
    for _ in range(2):
        dm.gate("h", [0])
        dm.pauli1(0, 0.0, 0.0, dephasing_probability(1.2))
    assert_counts_match(result.counts(), dm.probabilities([0]))
    pair = job(
        2,
        gate("H", 0),
        gate("H", 1),
        gate("CZ", 0, 1),
        gate("H", 0),
        gate("H", 1),
        noise={"phase": {"two_qubit_control": 0.9, "two_qubit_target": 2.0}},
    )
    result = run(pair, backend, seed=13)
    dm = DensityMatrix(2)
    dm.gate("h", [0])
    dm.gate("h", [1])
    dm.gate("cz", [0, 1])
    dm.pauli1(0, 0.0, 0.0, dephasing_probability(0.9))
    dm.pauli1(1, 0.0, 0.0, dephasing_probability(2.0))
    dm.gate("h", [0])
    dm.gate("h", [1])
    assert_counts_match(result.counts(), dm.probabilities([0, 1]))


@BOTH
def test_a_reset_returns_an_atom_to_zero_with_the_preparation_error(backend):
    reset = {"op": "Reset", "targets": [0]}
    wire = job(1, gate("X", 0), measure(0), reset, measure(0), noise={"p_prep": 0.2})
    result = run(wire, backend, seed=14)
    # First measure: X on a prepared atom (|1> w.p. 0.8, |0> w.p. 0.2); then |1> w.p. 0.2.
    expected = {
        a + b: pa * pb for a, pa in (("1", 0.8), ("0", 0.2)) for b, pb in (("1", 0.2), ("0", 0.8))
    }
    assert_counts_match(result.counts(), expected)
