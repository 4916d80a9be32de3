"""Physical qubit parameters: QRE's six sets, QRE's physical error rate, validation."""

from __future__ import annotations

import pickle

import msgspec
import pytest

from qmk.qec import QUBIT_PARAMS, QECError, QubitParams, qubit_params
from qmk.qec.params import GATE_BASED, MAJORANA

# QRE's values, copied by hand from GateBasedPhysicalQubit/MajoranaQubit in
# source/resource_estimator/src/system/modeling/physical_qubit.rs (microsoft/qsharp).
# (measure time, gate time, T time, Clifford+measure+idle rate, T rate)
GATE_SETS = {
    "qubit_gate_ns_e3": (100, 50, 50, 1e-3, 1e-3),
    "qubit_gate_ns_e4": (100, 50, 50, 1e-4, 1e-4),
    "qubit_gate_us_e3": (100_000, 100_000, 100_000, 1e-3, 1e-6),
    "qubit_gate_us_e4": (100_000, 100_000, 100_000, 1e-4, 1e-6),
}
# (measure time, joint measure time, T time, measurement/idle rate, T rate)
MAJORANA_SETS = {
    "qubit_maj_ns_e4": (100, 100, 100, 1e-4, 0.05),
    "qubit_maj_ns_e6": (100, 100, 100, 1e-6, 0.01),
}


def test_there_are_exactly_the_six_qre_sets_in_qre_order():
    assert list(QUBIT_PARAMS) == [*GATE_SETS, *MAJORANA_SETS]


@pytest.mark.parametrize("name", list(GATE_SETS))
def test_gate_based_sets_have_qres_values(name: str):
    measure, gate, t_time, rate, t_rate = GATE_SETS[name]
    q = qubit_params(name)
    assert q.name == name and q.instruction_set == GATE_BASED
    assert (q.one_qubit_measurement_time, q.one_qubit_gate_time, q.two_qubit_gate_time) == (
        measure,
        gate,
        gate,
    )
    assert q.t_gate_time == t_time
    assert q.one_qubit_measurement_error_rate == rate
    assert q.one_qubit_gate_error_rate == q.two_qubit_gate_error_rate == q.idle_error_rate == rate
    assert q.t_gate_error_rate == t_rate
    assert q.two_qubit_joint_measurement_time is None
    assert q.physical_error_rate == rate


@pytest.mark.parametrize("name", list(MAJORANA_SETS))
def test_majorana_sets_have_qres_values(name: str):
    measure, joint, t_time, rate, t_rate = MAJORANA_SETS[name]
    q = qubit_params(name)
    assert q.instruction_set == MAJORANA
    assert (q.one_qubit_measurement_time, q.two_qubit_joint_measurement_time, q.t_gate_time) == (
        measure,
        joint,
        t_time,
    )
    assert q.one_qubit_measurement_error_rate == q.one_qubit_measurement_readout_rate == rate
    assert q.two_qubit_joint_measurement_error_rate == rate
    assert q.two_qubit_joint_measurement_readout_rate == rate
    assert q.idle_error_rate == rate and q.t_gate_error_rate == t_rate
    assert q.one_qubit_gate_time is None and q.one_qubit_gate_error_rate is None
    assert q.physical_error_rate == rate


def _gate(**changes):
    return qubit_params("qubit_gate_ns_e3").replace(**changes)


def _maj(**changes):
    return qubit_params("qubit_maj_ns_e4").replace(**changes)


@pytest.mark.parametrize(
    ("changes", "clifford", "readout"),
    [
        ({"one_qubit_gate_error_rate": 4e-3}, 4e-3, 1e-3),
        ({"two_qubit_gate_error_rate": 5e-3}, 5e-3, 1e-3),
        ({"idle_error_rate": 6e-3}, 6e-3, 1e-3),
        ({"one_qubit_measurement_error_rate": 7e-3}, 1e-3, 7e-3),
        ({"t_gate_error_rate": 0.5}, 1e-3, 1e-3),  # T rate never enters p
    ],
)
def test_gate_based_p_is_max_of_gate_idle_and_measurement_rates(changes, clifford, readout):
    q = _gate(**changes)
    assert (q.clifford_error_rate, q.readout_error_rate) == (clifford, readout)
    assert q.physical_error_rate == max(clifford, readout)


@pytest.mark.parametrize(
    ("changes", "clifford", "readout"),
    [
        ({"one_qubit_measurement_error_rate": 3e-4}, 3e-4, 1e-4),  # process, readout stays
        ({"two_qubit_joint_measurement_error_rate": 4e-4}, 4e-4, 1e-4),
        ({"idle_error_rate": 5e-4}, 5e-4, 1e-4),
        ({"one_qubit_measurement_readout_error_rate": 6e-4}, 1e-4, 6e-4),
        ({"two_qubit_joint_measurement_readout_error_rate": 7e-4}, 1e-4, 7e-4),
    ],
)
def test_majorana_p_is_max_of_process_idle_and_readout_rates(changes, clifford, readout):
    q = _maj(**changes)
    assert (q.clifford_error_rate, q.readout_error_rate) == (clifford, readout)
    assert q.physical_error_rate == max(clifford, readout)


def test_a_majorana_readout_rate_left_unset_equals_its_process_rate():
    q = _maj(
        one_qubit_measurement_readout_error_rate=None,
        two_qubit_joint_measurement_readout_error_rate=None,
        one_qubit_measurement_error_rate=2e-4,
    )
    assert q.one_qubit_measurement_readout_rate == 2e-4
    assert q.readout_error_rate == 2e-4


@pytest.mark.parametrize("name", ["qubit_gate_ns_e5", "QUBIT_GATE_NS_E3", "", "surface_code"])
def test_an_unknown_set_name_is_qc101_and_lists_the_known_ones(name: str):
    with pytest.raises(QECError) as caught:
        qubit_params(name)
    assert caught.value.code == "QC101" and caught.value.name == "unknown-qubit-params"
    assert "qubit_gate_ns_e3" in caught.value.message
    assert caught.value.details == {"name": name}


def test_qubit_params_passes_a_qubit_params_through():
    q = _gate(name="mine")
    assert qubit_params(q) is q


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"instruction_set": "photonic"}, "instruction_set"),
        ({"one_qubit_gate_time": None}, "one_qubit_gate_time"),
        ({"two_qubit_gate_error_rate": None}, "two_qubit_gate_error_rate"),
        ({"two_qubit_joint_measurement_time": 100}, "two_qubit_joint_measurement_time"),
        ({"one_qubit_measurement_time": 0}, "one_qubit_measurement_time"),
        ({"one_qubit_measurement_time": 1.5}, "one_qubit_measurement_time"),
        ({"t_gate_time": True}, "t_gate_time"),
        ({"idle_error_rate": 0.0}, "idle_error_rate"),
        ({"idle_error_rate": 1.0}, "idle_error_rate"),
        ({"one_qubit_gate_error_rate": -1e-3}, "one_qubit_gate_error_rate"),
        ({"t1_ns": -5.0}, "t1_ns"),
        ({"t1_ns": 100.0, "t2_ns": 300.0}, "t2_ns"),
    ],
)
def test_bad_gate_based_parameters_are_qc103_naming_the_field(changes, field):
    with pytest.raises(QECError) as caught:
        _gate(**changes)
    assert caught.value.code == "QC103" and caught.value.details["field"] == field
    assert field in caught.value.message


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"two_qubit_joint_measurement_time": None}, "two_qubit_joint_measurement_time"),
        ({"one_qubit_gate_time": 50}, "one_qubit_gate_time"),
        ({"two_qubit_gate_error_rate": 1e-3}, "two_qubit_gate_error_rate"),
    ],
)
def test_bad_majorana_parameters_are_qc103_naming_the_field(changes, field):
    with pytest.raises(QECError) as caught:
        _maj(**changes)
    assert caught.value.details["field"] == field


@pytest.mark.parametrize("name", list(QUBIT_PARAMS))
def test_params_round_trip_through_json_and_repr(name: str):
    q = QUBIT_PARAMS[name]
    assert QubitParams.from_json(q.to_json()) == q
    assert eval(repr(q), {"QubitParams": QubitParams}) == q


def test_from_json_refuses_unknown_and_missing_fields():
    data = QUBIT_PARAMS["qubit_gate_ns_e3"].to_json()
    with pytest.raises(QECError, match="gate_time: unknown key"):
        QubitParams.from_json({**data, "gate_time": 3})
    del data["t_gate_time"]
    with pytest.raises(QECError) as caught:
        QubitParams.from_json(data)
    assert caught.value.code == "QC103" and "t_gate_time" in caught.value.message


def test_time_variables_use_qres_formula_names_and_only_existing_times():
    gate = qubit_params("qubit_gate_us_e3").time_variables()
    assert gate == {
        "oneQubitMeasurementTime": 100_000.0,
        "oneQubitGateTime": 100_000.0,
        "twoQubitGateTime": 100_000.0,
        "tGateTime": 100_000.0,
    }
    assert "twoQubitGateTime" not in qubit_params("qubit_maj_ns_e6").time_variables()


def test_params_are_frozen():
    with pytest.raises(AttributeError):
        QUBIT_PARAMS["qubit_gate_ns_e3"].idle_error_rate = 0.5  # type: ignore[misc]


@pytest.mark.parametrize("name", list(QUBIT_PARAMS))
def test_params_round_trip_through_the_schema_library_and_pickle(name: str):
    q = QUBIT_PARAMS[name]
    assert msgspec.to_builtins(q) == q.to_json()
    assert msgspec.convert(msgspec.to_builtins(q), QubitParams) == q
    assert msgspec.json.decode(msgspec.json.encode(q), type=QubitParams) == q
    assert pickle.loads(pickle.dumps(q)) == q


def test_a_bad_value_in_json_is_qc103_naming_its_field():
    data = {**QUBIT_PARAMS["qubit_gate_ns_e3"].to_json(), "t_gate_time": "50"}
    with pytest.raises(QECError) as caught:
        QubitParams.from_json(data)
    assert caught.value.code == "QC103" and caught.value.details["field"] == "t_gate_time"
    assert "\n" not in str(caught.value)
