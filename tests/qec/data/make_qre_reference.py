"""Regenerate ``qre_reference.json`` from the Azure Quantum Resource Estimator itself.

Needs the ``qsharp`` Python package (not a QMK dependency), so run it by hand in an
environment that has it::

    python -m venv /tmp/qre && /tmp/qre/bin/pip install qsharp
    /tmp/qre/bin/python tests/qec/data/make_qre_reference.py

The tests read only the JSON it writes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("qre_reference.json")
PRESETS = {
    "surface_code": [
        "qubit_gate_ns_e3",
        "qubit_gate_ns_e4",
        "qubit_gate_us_e3",
        "qubit_gate_us_e4",
        "qubit_maj_ns_e4",
        "qubit_maj_ns_e6",
    ],
    "floquet_code": ["qubit_maj_ns_e4", "qubit_maj_ns_e6"],
}
BUDGETS = (0.3, 1e-2, 1e-4, 1e-8, 1e-12)
_GATE = {"instructionSet": "GateBased", "oneQubitMeasurementTime": "100 ns"}
_MAJ = {"instructionSet": "Majorana", "oneQubitMeasurementTime": "100 ns", "tGateTime": "100 ns"}
CUSTOM: dict[str, tuple[dict[str, Any], str]] = {
    "gate_readout_dominates": (
        {
            **_GATE,
            "name": "g1",
            "oneQubitMeasurementTime": "120 ns",
            "oneQubitGateTime": "30 ns",
            "twoQubitGateTime": "70 ns",
            "tGateTime": "30 ns",
            "oneQubitMeasurementErrorRate": 2e-3,
            "oneQubitGateErrorRate": 1e-4,
            "twoQubitGateErrorRate": 5e-4,
            "tGateErrorRate": 1e-3,
            "idleErrorRate": 1e-4,
        },
        "surface_code",
    ),
    "gate_idle_dominates": (
        {
            **_GATE,
            "name": "g2",
            "oneQubitGateTime": "50 ns",
            "twoQubitGateTime": "50 ns",
            "tGateTime": "50 ns",
            "oneQubitMeasurementErrorRate": 1e-4,
            "oneQubitGateErrorRate": 1e-4,
            "twoQubitGateErrorRate": 2e-4,
            "tGateErrorRate": 1e-3,
            "idleErrorRate": 7e-4,
        },
        "surface_code",
    ),
    "maj_readout_dominates": (
        {
            **_MAJ,
            "name": "m1",
            "twoQubitJointMeasurementTime": "150 ns",
            "oneQubitMeasurementErrorRate": {"process": 1e-4, "readout": 3e-4},
            "twoQubitJointMeasurementErrorRate": {"process": 2e-4, "readout": 1e-4},
            "tGateErrorRate": 0.05,
            "idleErrorRate": 5e-5,
        },
        "floquet_code",
    ),
    "maj_joint_process_dominates": (
        {
            **_MAJ,
            "name": "m2",
            "twoQubitJointMeasurementTime": "150 ns",
            "oneQubitMeasurementErrorRate": {"process": 1e-5, "readout": 2e-5},
            "twoQubitJointMeasurementErrorRate": {"process": 4e-5, "readout": 1e-5},
            "tGateErrorRate": 0.05,
            "idleErrorRate": 1e-5,
        },
        "surface_code",
    ),
    "gate_above_threshold_clifford": (
        {
            **_GATE,
            "name": "g3",
            "oneQubitGateTime": "50 ns",
            "oneQubitMeasurementErrorRate": 1e-3,
            "oneQubitGateErrorRate": 1e-2,
            "tGateErrorRate": 1e-3,
        },
        "surface_code",
    ),
    "gate_above_threshold_readout": (
        {
            **_GATE,
            "name": "g4",
            "oneQubitGateTime": "50 ns",
            "oneQubitMeasurementErrorRate": 2e-2,
            "oneQubitGateErrorRate": 1e-3,
            "idleErrorRate": 1e-3,
            "tGateErrorRate": 1e-3,
        },
        "surface_code",
    ),
}


def main() -> None:
    """Run QRE on every case and write the JSON."""
    warnings.filterwarnings("ignore")
    from qsharp.estimator import LogicalCounts  # type: ignore[import-not-found]

    def estimate(qubit: dict[str, Any], scheme: str, budget: float) -> dict[str, Any]:
        counts = LogicalCounts({"numQubits": 10, "tCount": 0, "measurementCount": 100})
        params = {"qubitParams": qubit, "qecScheme": {"name": scheme}, "errorBudget": budget}
        return counts.estimate(params)

    presets: dict[str, Any] = {}
    estimates: list[dict[str, Any]] = []
    refusals: list[dict[str, Any]] = []

    def record(case: str | None, qubit: dict[str, Any], scheme: str, budget: float) -> None:
        try:
            result = estimate(qubit, scheme, budget)
        except BaseException as exc:  # QRE's EstimatorError is not an Exception subclass
            refusals.append(
                {"case": case, "qubitParams": qubit, "scheme": scheme, "error": str(exc)}
            )
            return
        breakdown = result["physicalCounts"]["breakdown"]
        if case is None:
            presets[qubit["name"]] = result["jobParams"]["qubitParams"]
        estimates.append(
            {
                "case": case,
                "qubitParams": qubit if case is None else result["jobParams"]["qubitParams"],
                "qecScheme": result["jobParams"]["qecScheme"],
                "errorBudget": budget,
                "requiredLogicalQubitErrorRate": breakdown["requiredLogicalQubitErrorRate"],
                "cliffordErrorRate": breakdown.get("cliffordErrorRate"),
                "logicalQubit": result["logicalQubit"],
            }
        )

    for scheme, names in PRESETS.items():
        for name in names:
            for budget in BUDGETS:
                record(None, {"name": name}, scheme, budget)
    for case, (qubit, scheme) in CUSTOM.items():
        record(case, qubit, scheme, 1e-6)
    record("floquet_on_gate_based", {"name": "qubit_gate_ns_e3"}, "floquet_code", 1e-3)
    about = (
        "Outputs of the Azure Quantum Resource Estimator (the qsharp Python package, "
        "LogicalCounts({'numQubits': 10, 'measurementCount': 100}).estimate(...)), written by "
        "make_qre_reference.py for tests/qec/test_qre_reference.py."
    )
    data = {"about": about, "presets": presets, "estimates": estimates, "refusals": refusals}
    OUT.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
