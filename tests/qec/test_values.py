"""The QEC layer's plain values load without its models (issue 79: the kernel loads them)."""

from __future__ import annotations

import json
import subprocess
import sys

from qmk.qec import noise, values
from qmk.qec.logical import Calibration
from qmk.qec.params import QUBIT_PARAMS, QubitParams

#: The layer's models: what a module that only holds or checks the values must not load.
MODELS = ("qmk.qec.codes", "qmk.qec.formula", "qmk.qec.logical", "qmk.qec.noise")


def _loaded_by(*modules: str) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('qmk.'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded: list[str] = json.loads(out)
    return loaded


def test_the_values_module_loads_no_scheme_formula_or_noise_model() -> None:
    loaded = _loaded_by("qmk.qec.values")
    assert [m for m in MODELS if m in loaded] == []


def test_the_kernel_config_and_a_run_request_load_nothing_of_the_qec_layer() -> None:
    # they hold custom qubits and calibrations as JSON: the layer makes the values
    loaded = _loaded_by("qmk.kernel.config", "qmk.execution.request")
    assert [m for m in loaded if m == "qmk.qec" or m.startswith("qmk.qec.")] == []
    assert [m for m in loaded if m == "qmk.devices" or m.startswith("qmk.devices.")] == []


def test_the_json_a_request_carries_makes_the_same_values_again() -> None:
    custom = QUBIT_PARAMS["qubit_maj_ns_e4"].replace(name="custom", idle_error_rate=2e-4)
    assert values.qubit_of(custom.to_json()) == custom
    assert values.qubit_of("qubit_gate_ns_e3") == "qubit_gate_ns_e3"
    fitted = Calibration(
        family="surface_code", crossing_prefactor=0.07, error_correction_threshold=0.009
    )
    assert values.calibration_of(fitted.to_json()) == fitted
    assert values.calibration_of(None) is None


def test_the_layer_exports_the_values_it_holds_as_the_same_objects() -> None:
    import qmk.qec as qec

    assert qec.Calibration is Calibration is values.Calibration
    assert qec.QubitParams is QubitParams is values.QubitParams
    assert qec.noise is noise


def test_the_noise_model_names_are_the_noise_models_by_name() -> None:
    assert tuple(noise.NOISE_MODELS) == values.NOISE_MODEL_NAMES


def test_qubit_params_round_trip_through_the_values_module() -> None:
    for params in QUBIT_PARAMS.values():
        assert values.QubitParams.from_json(params.to_json()) == params
