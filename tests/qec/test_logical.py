"""The logical model: defaults, the Pauli channel of a span of cycles, op cycles, errors."""

from __future__ import annotations

import json
import math

import pytest

from qmk.qec import (
    DEFAULT_PROFILE,
    DEFAULT_QUBIT,
    OP_CYCLES,
    Depolarizing,
    GateNoise,
    LogicalModel,
    PauliRates,
    QECError,
    logical_model,
    op_cycles,
    qubit_params,
)
from qmk.qec.logical import OP_ALIASES, op_key
from qmk.qvm.ops import OPS
from qmk.qvm.profiles import Profile


@pytest.fixture(scope="module")
def default() -> LogicalModel:
    return logical_model()


def test_the_default_machine_is_surface_code_d9_on_qubit_gate_ns_e3(default: LogicalModel):
    assert DEFAULT_PROFILE == "logical:surface_code(d=9)" and DEFAULT_QUBIT == "qubit_gate_ns_e3"
    assert (default.family, default.distance, default.qubit.name) == (
        "surface_code",
        9,
        "qubit_gate_ns_e3",
    )
    assert default.physical_qubits_per_logical == 162
    assert default.cycle_time_ns == 3600
    assert default.decoder_rounds_per_cycle == 9
    assert default.physical_error_rate == 1e-3
    assert default.logical_error_per_cycle == pytest.approx(3e-7, rel=1e-12)
    assert default.noise is None


def test_profiles_parse_with_aliases_and_cache(default: LogicalModel):
    assert logical_model("logical:Surface(d=9)") is default
    assert logical_model(Profile(family="surface_code", distance=9), "qubit_gate_ns_e3") is default
    assert logical_model(DEFAULT_PROFILE, qubit_params(DEFAULT_QUBIT)) is default


@pytest.mark.parametrize("cycles", [0.5, 1, 2, 7.25, 1000, 1e9])
def test_pauli_error_probabilities_split_equally_and_sum_to_the_any_error_probability(
    default: LogicalModel, cycles: float
):
    rates = default.pauli_error(cycles)
    expected = 1 - (1 - default.logical_error_per_cycle) ** cycles
    assert rates.total == pytest.approx(expected, rel=1e-9)
    assert rates.px == rates.py == rates.pz == pytest.approx(expected / 3, rel=1e-9)
    assert sum(rates.as_tuple()) == pytest.approx(rates.total)
    assert 0 < rates.total <= 1


def test_pauli_error_of_one_cycle_is_p_l_and_of_zero_cycles_is_nothing(default: LogicalModel):
    assert default.pauli_error(1).total == pytest.approx(default.logical_error_per_cycle, rel=1e-12)
    assert default.pauli_error(0) == PauliRates(px=0.0, py=0.0, pz=0.0)


def test_error_probabilities_of_consecutive_spans_compose(default: LogicalModel):
    a, b = default.pauli_error(3).total, default.pauli_error(4).total
    assert default.pauli_error(7).total == pytest.approx(1 - (1 - a) * (1 - b), rel=1e-9)


def test_pauli_error_grows_with_cycles_and_saturates_below_one():
    model = logical_model("logical:bacon_shor(d=3)")
    totals = [model.pauli_error(c).total for c in (1, 10, 100, 1e4, 1e6)]
    assert totals == sorted(totals) and totals[-1] <= 1


@pytest.mark.parametrize("cycles", [-1, math.nan, math.inf, "2", True])
def test_pauli_error_refuses_bad_cycles_with_qc103(default: LogicalModel, cycles):
    with pytest.raises(QECError) as caught:
        default.pauli_error(cycles)
    assert caught.value.code == "QC103"


def test_p_l_falls_with_distance_for_every_family():
    for family, qubit in [
        ("surface_code", "qubit_gate_ns_e3"),
        ("surface_code", "qubit_maj_ns_e4"),
        ("floquet_code", "qubit_maj_ns_e4"),
        ("bacon_shor", "qubit_gate_ns_e4"),  # at 1e-3 its law is best at d = 7
        ("SHYPS", "qubit_gate_ns_e3"),
    ]:
        rates = [
            logical_model(f"logical:{family}(d={d})", qubit).logical_error_per_cycle
            for d in (3, 5, 7, 9, 11)
        ]
        assert rates == sorted(rates, reverse=True) and len(set(rates)) == 5, family


@pytest.mark.parametrize("name", list(OPS))
def test_every_qvm_op_has_a_cycle_count(name: str):
    cycles = op_cycles(name)
    assert cycles >= 0 and float(cycles).is_integer()


def test_every_table_entry_names_real_qvm_ops_once():
    listed = [op for entry in OP_CYCLES.values() for op in entry.qvm_ops]
    assert sorted(listed) == sorted(OPS)
    assert all(key == key.lower() for key in OP_CYCLES)
    assert set(OP_ALIASES.values()) <= set(OP_CYCLES)


@pytest.mark.parametrize(
    ("name", "cycles"),
    [
        ("APPLY_X", 0),
        ("APPLY_Z", 0),
        ("COND_PAULI", 0),
        ("APPLY_H", 1),
        ("APPLY_S", 1),
        ("APPLY_CNOT", 1),
        ("APPLY_T", 1),
        ("INJECT_T_STATE", 1),
        ("APPLY_RZ", 1),
        ("MEASURE_Z", 1),
        ("MEASURE_X", 1),
        ("ALLOC_LQ", 1),
        ("RESET", 1),
        ("OPEN_CHAN", 1),
        ("TELEPORT_CNOT", 2),
        ("APPLY_CCX", 3),
        ("FREE_LQ", 0),
        ("FENCE_EPOCH", 0),
        ("h", 1),
        ("cx", 1),
        ("cnot", 1),
        ("CNOT", 1),
        ("measure", 1),
        ("t", 1),
        ("rz", 1),
        ("reset", 1),
        ("teleport_cnot", 2),
        ("toffoli", 3),
        ("apply_h", 1),
    ],
)
def test_op_cycles_model(name: str, cycles: float):
    assert op_cycles(name) == cycles


def test_qres_counted_operations_take_qres_cycles():
    # QRE's logical depth: 1 per measurement, T gate and rotation; 3 per CCZ/CCiX.
    for name in ("MEASURE_Z", "APPLY_T", "APPLY_RX", "APPLY_RY", "APPLY_RZ"):
        assert op_cycles(name) == 1
    assert op_cycles("APPLY_CCZ") == op_cycles("APPLY_CCX") == 3


@pytest.mark.parametrize("name", ["APPLY_FOO", "", "measure_w", "MEASURE_W", "APPLY_HH"])
def test_an_unknown_op_is_qc104(name: str):
    with pytest.raises(QECError) as caught:
        op_cycles(name)
    assert (caught.value.code, caught.value.name) == ("QC104", "unknown-op")
    assert "APPLY_H" in caught.value.message


def test_op_error_and_op_time_follow_the_op_cycles(default: LogicalModel):
    assert default.op_error("APPLY_X") == PauliRates(px=0.0, py=0.0, pz=0.0)
    assert default.op_error("APPLY_CNOT") == default.pauli_error(1)
    assert default.op_error("APPLY_CCZ") == default.pauli_error(3)
    assert default.op_time_ns("TELEPORT_CNOT") == 2 * 3600
    assert default.op_cycles("MEASURE_Y") == 1
    assert op_key("MEASURE_Y") == "measure"


@pytest.mark.parametrize(
    "profile",
    ["logical:toric(d=3)", "surface_code(d=9)", "logical:surface_code(d=x)", "logical:SHYPS()", 9],
)
def test_a_bad_profile_is_qc102(profile):
    with pytest.raises(QECError) as caught:
        logical_model(profile)
    assert caught.value.code == "QC102"


def test_an_unknown_qubit_set_is_qc101():
    with pytest.raises(QECError) as caught:
        logical_model(DEFAULT_PROFILE, "qubit_gate_ns_e9")
    assert caught.value.code == "QC101"


@pytest.mark.parametrize(
    ("profile", "qubit"),
    [
        ("logical:floquet_code(d=9)", "qubit_gate_ns_e3"),
        ("logical:honeycomb(d=5)", "qubit_gate_us_e4"),
        ("logical:bacon_shor(d=5)", "qubit_maj_ns_e4"),
        ("logical:SHYPS(d=5)", "qubit_maj_ns_e6"),
    ],
)
def test_a_family_that_does_not_fit_the_qubits_is_qc105(profile: str, qubit: str):
    with pytest.raises(QECError) as caught:
        logical_model(profile, qubit)
    assert caught.value.code == "QC105"


def test_a_distance_beyond_50_is_qc107():
    with pytest.raises(QECError) as caught:
        logical_model("logical:surface_code(d=51)")
    assert caught.value.code == "QC107"


def test_noise_changes_p_and_p_l_but_not_time_or_qubits(default: LogicalModel):
    noisy = logical_model(DEFAULT_PROFILE, noise=Depolarizing(p=2e-3))
    assert noisy.physical_error_rate == 2e-3
    assert noisy.logical_error_per_cycle == pytest.approx(0.03 * 0.2**5)
    assert noisy.logical_error_per_cycle > default.logical_error_per_cycle
    assert (noisy.cycle_time_ns, noisy.physical_qubits_per_logical) == (3600, 162)
    assert noisy.qubit == default.qubit and noisy.noise == Depolarizing(p=2e-3)


@pytest.mark.parametrize(
    ("qubit", "noise"),
    [
        ("qubit_gate_ns_e3", Depolarizing(p=0.01)),  # Clifford rate = p*: QRE refuses
        ("qubit_gate_ns_e3", Depolarizing(p=0.02)),
        ("qubit_maj_ns_e4", Depolarizing(p=0.0015)),
        ("qubit_gate_ns_e3", GateNoise(two_qubit=0.02)),
    ],
)
def test_rates_not_below_threshold_are_qc106(qubit, noise):
    with pytest.raises(QECError) as caught:
        logical_model("logical:surface_code(d=5)", qubit, noise=noise)
    assert caught.value.name == "above-threshold"


def test_an_unhashable_noise_model_still_works():
    class ListNoise:
        __hash__ = None  # type: ignore[assignment]

        def __init__(self) -> None:
            self.models = [Depolarizing(p=5e-4)]

        def apply(self, qubit):
            return self.models[0].apply(qubit)

    model = logical_model(DEFAULT_PROFILE, noise=ListNoise())
    assert model.physical_error_rate == 5e-4


def test_to_json_is_plain_json(default: LogicalModel):
    data = json.loads(json.dumps(default.to_json()))
    assert data["profile"] == "logical:surface_code(d=9)"
    assert data["physical_qubits_per_logical"] == 162 and data["cycle_time_ns"] == 3600
    assert data["crossing_prefactor"] == 0.03 and data["noise"] is None


@pytest.mark.parametrize("rates", [(-0.1, 0.0, 0.0), (0.5, 0.5, 0.5), (math.nan, 0.0, 0.0)])
def test_pauli_rates_must_be_a_probability_distribution(rates):
    with pytest.raises(QECError):
        PauliRates(px=rates[0], py=rates[1], pz=rates[2])


@pytest.mark.parametrize("family", ["surface_code", "bacon_shor"])
@pytest.mark.parametrize("distance", [3, 5, 7])
def test_syndrome_bits_per_round_are_the_measurements_of_a_round_of_stims_memory_circuit(
    family, distance
):
    from qmk.experiments.circuits import memory_circuit
    from qmk.qec.logical import syndrome_bits_per_round

    two = memory_circuit(family, distance=distance, rounds=2)
    three = memory_circuit(family, distance=distance, rounds=3)
    per_round = three.num_measurements - two.num_measurements
    assert syndrome_bits_per_round(family, distance) == per_round


# --------------------------------------------------------------------------- calibration


def _calibration(**changes: object):
    from qmk.qec.logical import Calibration

    fields: dict = {
        "family": "surface_code",
        "crossing_prefactor": 0.05,
        "error_correction_threshold": 0.009,
        "crossing_prefactor_sigma": 0.001,
        "source": "test",
        **changes,
    }
    return Calibration(**fields)


def test_a_calibrations_json_is_its_files_form_kind_and_version_first():
    data = _calibration().to_json()
    assert list(data)[:2] == ["kind", "version"] and data["kind"] == "qmk.qec.calibration"
    assert data["error_correction_threshold_sigma"] is None  # written, not left out
    assert json.loads(json.dumps(data)) == data


def test_a_calibration_round_trips_through_the_schema_library_and_pickle():
    import pickle

    import msgspec

    from qmk.qec.logical import Calibration

    cal = _calibration(instruction_set="majorana", family="floquet_code")
    assert msgspec.convert(msgspec.to_builtins(cal), Calibration) == cal
    assert msgspec.json.decode(msgspec.json.encode(cal), type=Calibration) == cal
    assert Calibration.from_json(cal.to_json()) == cal
    assert pickle.loads(pickle.dumps(cal)) == cal


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"crossing_prefactor": "0.05"}, "crossing_prefactor"),
        ({"error_correction_threshold": 1.0}, "error_correction_threshold"),
        ({"crossing_prefactor_sigma": -1.0}, "crossing_prefactor_sigma"),
        ({"version": 2}, "version"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_calibration_file_is_qc103_naming_its_key(changes: dict, key: str):
    from qmk.qec.logical import Calibration

    with pytest.raises(QECError) as caught:
        Calibration.from_json({**_calibration().to_json(), **changes})
    assert caught.value.code == "QC103" and caught.value.details["key"] == key
    assert key in caught.value.message and "\n" not in str(caught.value)
