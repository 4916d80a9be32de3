"""qmk.qec against outputs recorded from the Azure Quantum Resource Estimator itself.

``data/qre_reference.json`` holds what QRE (the qsharp 1.31 Python package) answered
for every predefined qubit set and scheme at several error budgets, for custom qubits
whose physical error rate comes from different fields, and the inputs it refused. Our
numbers must equal QRE's exactly, floats included.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from qmk.qec import QUBIT_PARAMS, QECError, QubitParams, logical_model, scheme_for
from qmk.qvm.profiles import Profile

DATA = json.loads((Path(__file__).parent / "data" / "qre_reference.json").read_text("utf-8"))

_FIELDS = {
    "oneQubitMeasurementTime": "one_qubit_measurement_time",
    "oneQubitGateTime": "one_qubit_gate_time",
    "twoQubitGateTime": "two_qubit_gate_time",
    "tGateTime": "t_gate_time",
    "twoQubitJointMeasurementTime": "two_qubit_joint_measurement_time",
    "oneQubitGateErrorRate": "one_qubit_gate_error_rate",
    "twoQubitGateErrorRate": "two_qubit_gate_error_rate",
    "tGateErrorRate": "t_gate_error_rate",
    "idleErrorRate": "idle_error_rate",
}


def from_qre(data: dict[str, Any]) -> QubitParams:
    """QRE's serialized qubit parameters (fully specified) as QubitParams."""
    if set(data) == {"name"}:
        return QUBIT_PARAMS[data["name"]]
    kwargs: dict[str, Any] = {
        "name": data["name"],
        "instruction_set": "gate_based" if data["instructionSet"] == "GateBased" else "majorana",
    }
    for key, field in _FIELDS.items():
        if key in data:
            value = data[key]
            if isinstance(value, str):
                match = re.fullmatch(r"(\d+) ns", value)
                assert match, value
                value = int(match.group(1))
            kwargs[field] = value
    for key, field in (
        ("oneQubitMeasurementErrorRate", "one_qubit_measurement"),
        ("twoQubitJointMeasurementErrorRate", "two_qubit_joint_measurement"),
    ):
        value = data.get(key)
        if isinstance(value, dict):
            kwargs[f"{field}_error_rate"] = value["process"]
            kwargs[f"{field}_readout_error_rate"] = value["readout"]
        elif value is not None:
            kwargs[f"{field}_error_rate"] = value
    return QubitParams(**kwargs)


@pytest.mark.parametrize("name", list(DATA["presets"]))
def test_the_six_predefined_sets_equal_qres(name: str):
    assert from_qre(DATA["presets"][name]) == QUBIT_PARAMS[name]


def test_the_reference_covers_all_six_sets_and_both_qre_schemes():
    assert set(DATA["presets"]) == set(QUBIT_PARAMS)
    names = {(e["qubitParams"].get("name"), e["qecScheme"]["name"]) for e in DATA["estimates"]}
    assert ("qubit_maj_ns_e4", "floquet_code") in names
    assert ("qubit_maj_ns_e6", "surface_code") in names


@pytest.mark.parametrize(
    "estimate",
    DATA["estimates"],
    ids=lambda e: (
        f"{e.get('case') or e['qubitParams']['name']}-{e['qecScheme']['name']}-{e['errorBudget']}"
    ),
)
def test_logical_qubit_equals_qre_bit_for_bit(estimate: dict[str, Any]):
    qubit = from_qre(estimate["qubitParams"])
    expected = estimate["logicalQubit"]
    profile = Profile(family=estimate["qecScheme"]["name"], distance=expected["codeDistance"])
    model = logical_model(profile, qubit)
    assert model.physical_qubits_per_logical == expected["physicalQubits"]
    assert model.cycle_time_ns == expected["logicalCycleTime"]
    assert model.logical_error_per_cycle == expected["logicalErrorRate"]  # exact, not approx
    scheme = scheme_for(profile.family, qubit)
    distance = scheme.distance_for(
        model.physical_error_rate, estimate["requiredLogicalQubitErrorRate"]
    )
    assert distance == expected["codeDistance"]
    if estimate.get("cliffordErrorRate") is not None:
        assert qubit.clifford_error_rate == estimate["cliffordErrorRate"]


def test_the_reported_scheme_formulas_are_ours_verbatim():
    for estimate in DATA["estimates"]:
        reported = estimate["qecScheme"]
        if "crossingPrefactor" not in reported:
            continue
        scheme = scheme_for(reported["name"], from_qre(estimate["qubitParams"]))
        assert scheme.crossing_prefactor == reported["crossingPrefactor"]
        assert scheme.error_correction_threshold == reported["errorCorrectionThreshold"]
        assert scheme.logical_cycle_time.text == reported["logicalCycleTime"]
        assert (
            scheme.physical_qubits_per_logical_qubit.text
            == (reported["physicalQubitsPerLogicalQubit"])
        )
        assert scheme.max_distance == reported["maxCodeDistance"]


@pytest.mark.parametrize("refusal", DATA["refusals"], ids=lambda r: r.get("case") or r["scheme"])
def test_what_qre_refuses_we_refuse(refusal: dict[str, Any]):
    data = dict(refusal["qubitParams"])
    if "instructionSet" in data:
        # QRE derives unset gate-based fields from others (its normalization); do the same.
        data.setdefault("twoQubitGateTime", data["oneQubitGateTime"])
        data.setdefault("tGateTime", data["oneQubitGateTime"])
        data.setdefault("twoQubitGateErrorRate", data["oneQubitGateErrorRate"])
        data.setdefault("idleErrorRate", data["oneQubitMeasurementErrorRate"])
    with pytest.raises(QECError) as caught:
        logical_model(Profile(family=refusal["scheme"], distance=9), from_qre(data))
    unsupported = "InvalidFaultToleranceProtocol" in refusal["error"]
    assert caught.value.name == ("scheme-not-supported" if unsupported else "above-threshold")
