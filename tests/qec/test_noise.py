"""Physical error models: the rates they set and the p they feed the threshold formula."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qmk.qec import (
    Depolarizing,
    GateNoise,
    IdleNoise,
    MeasurementNoise,
    NoiseModel,
    NoiseStack,
    QECError,
    physical_error_rate,
    qubit_params,
)
from qmk.qec.noise import default_idle_step_ns

GATE = qubit_params("qubit_gate_ns_e4")
MAJ = qubit_params("qubit_maj_ns_e6")


def test_no_noise_model_means_the_qubits_own_rates():
    assert physical_error_rate(GATE) == GATE.physical_error_rate == 1e-4
    assert physical_error_rate(MAJ, None) == 1e-6


@pytest.mark.parametrize("qubit", [GATE, MAJ])
def test_depolarizing_sets_every_rate_the_qubit_has(qubit):
    noisy = Depolarizing(p=3e-3).apply(qubit)
    rates = {k: v for k, v in noisy.to_json().items() if k.endswith("error_rate")}
    assert rates and set(rates.values()) == {3e-3}
    assert noisy.physical_error_rate == 3e-3
    assert noisy.instruction_set == qubit.instruction_set
    assert noisy.one_qubit_measurement_time == qubit.one_qubit_measurement_time


def test_gate_noise_overrides_only_the_rates_it_names():
    noisy = GateNoise(two_qubit=2e-3).apply(GATE)
    assert (noisy.one_qubit_gate_error_rate, noisy.two_qubit_gate_error_rate) == (1e-4, 2e-3)
    assert noisy.physical_error_rate == 2e-3
    assert GateNoise(t_gate=0.2).apply(GATE).physical_error_rate == 1e-4  # T rate not in p


def test_gate_noise_on_a_majorana_qubit_is_qc103():
    with pytest.raises(QECError) as caught:
        GateNoise(one_qubit=1e-3).apply(MAJ)
    assert caught.value.code == "QC103" and "MeasurementNoise" in caught.value.message
    assert GateNoise(t_gate=0.02).apply(MAJ).t_gate_error_rate == 0.02


def test_measurement_noise_on_gate_based_and_majorana_qubits():
    assert MeasurementNoise(process=5e-4).apply(GATE).physical_error_rate == 5e-4
    with pytest.raises(QECError, match="process only"):
        MeasurementNoise(readout=5e-4).apply(GATE)
    noisy = MeasurementNoise(readout=2e-5).apply(MAJ)
    assert noisy.readout_error_rate == 2e-5 and noisy.clifford_error_rate == 1e-6
    noisy = MeasurementNoise(process=3e-5).apply(MAJ)
    assert (
        noisy.clifford_error_rate == 3e-5 and noisy.two_qubit_joint_measurement_error_rate == 3e-5
    )


def _kraus_pauli_twirl(t: float, t1: float, t2: float) -> tuple[float, float, float]:
    """Pauli-twirled (px, py, pz) of amplitude damping then pure dephasing, from Kraus ops."""
    gamma = 1 - math.exp(-t / t1)
    damp = [
        np.array([[1, 0], [0, math.sqrt(1 - gamma)]]),
        np.array([[0, math.sqrt(gamma)], [0, 0]]),
    ]
    # leftover dephasing so that coherences decay as exp(-t/T2) in all
    q = (1 - math.exp(-t / t2 + t / (2 * t1))) / 2
    z = np.diag([1.0, -1.0])
    dephase = [math.sqrt(1 - q) * np.eye(2), math.sqrt(q) * z]
    kraus = [b @ a for a in damp for b in dephase]
    paulis = [np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), z]
    return tuple(sum(abs(np.trace(p.conj().T @ k)) ** 2 for k in kraus) / 4 for p in paulis)  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("t", "t1", "t2"), [(100, 1e5, 1e5), (1000, 5e4, 2e4), (50, 2e3, 4e3), (1e5, 1e6, 3e5)]
)
def test_idle_noise_is_the_pauli_twirl_of_t1_t2_decay(t, t1, t2):
    px, py, pz = IdleNoise(t1_ns=t1, t2_ns=t2, step_ns=t).pauli(GATE)
    assert (px, py, pz) == pytest.approx(_kraus_pauli_twirl(t, t1, t2), rel=1e-9, abs=1e-15)
    noisy = IdleNoise(t1_ns=t1, t2_ns=t2, step_ns=t).apply(GATE)
    assert noisy.idle_error_rate == pytest.approx(px + py + pz)


def test_idle_noise_reads_t1_t2_from_the_qubit_and_steps_its_longest_operation():
    qubit = GATE.replace(t1_ns=80_000.0, t2_ns=60_000.0)
    assert default_idle_step_ns(qubit) == 100.0  # measurement 100 ns > gates 50 ns
    assert default_idle_step_ns(qubit_params("qubit_maj_ns_e4")) == 100.0
    expected = IdleNoise(t1_ns=80_000.0, t2_ns=60_000.0, step_ns=100.0).apply(GATE)
    assert IdleNoise().apply(qubit).idle_error_rate == expected.idle_error_rate


@pytest.mark.parametrize(
    ("noise", "match"),
    [
        (IdleNoise(), "needs T1 and T2"),
        (IdleNoise(t1_ns=100.0, t2_ns=500.0), "exceeds 2 T1"),
    ],
)
def test_idle_noise_without_usable_t1_t2_is_qc103(noise, match):
    with pytest.raises(QECError, match=match):
        noise.apply(GATE)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Depolarizing(p=0.0),
        lambda: Depolarizing(p=1.0),
        lambda: GateNoise(one_qubit=2.0),
        lambda: MeasurementNoise(readout=-0.1),
        lambda: IdleNoise(t1_ns=0.0),
        lambda: IdleNoise(step_ns=math.inf),
    ],
)
def test_out_of_range_noise_parameters_are_qc103(make):
    with pytest.raises(QECError) as caught:
        make()
    assert caught.value.code == "QC103"


def test_a_stack_applies_models_in_order():
    stack = NoiseStack((GateNoise(two_qubit=4e-3), Depolarizing(p=1e-3)))
    assert stack.apply(GATE).physical_error_rate == 1e-3
    stack = NoiseStack((Depolarizing(p=1e-3), GateNoise(two_qubit=4e-3)))
    assert stack.apply(GATE).physical_error_rate == 4e-3


@pytest.mark.parametrize(
    "model",
    [Depolarizing(p=1e-3), GateNoise(), MeasurementNoise(), IdleNoise(), NoiseStack(())],
)
def test_every_model_is_a_hashable_noise_model(model):
    assert isinstance(model, NoiseModel)
    assert hash(model) == hash(model)


@pytest.mark.parametrize(
    "text",
    [
        "depolarizing(p=0.009)",
        "gate(one_qubit=0.0001, two_qubit=0.004)",
        "measurement(process=0.0005, readout=0.001)",
        "idle(t1_ns=100000.0, t2_ns=80000.0)",
        "depolarizing(p=0.001) + gate(two_qubit=0.004)",
    ],
)
def test_a_noise_model_spec_reads_back_to_the_same_text(text):
    from qmk.qec.noise import describe_noise_model, parse_noise_model

    assert describe_noise_model(parse_noise_model(text)) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("depolarizing", "write NAME(key=value"),
        ("depolarizing(q=0.1)", "not key=value with a key of p"),
        ("depolarizing(p=lots)", "is not a number"),
        ("depolarizing(p=2)", "strictly between 0 and 1"),
        ("gate(two_qubit=0.1) + nothing()", "unknown model 'nothing'"),
    ],
)
def test_a_bad_noise_model_spec_is_a_coded_error_naming_the_part(text, why):
    from qmk.qec.errors import QECError
    from qmk.qec.noise import parse_noise_model

    with pytest.raises(QECError) as err:
        parse_noise_model(text)
    assert err.value.code == "QC103"
    assert why in err.value.message
