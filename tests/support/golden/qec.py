"""Examples of the QEC layer's structs: a physics file, a calibration, a column law and a
qubit parameter set.

Each is a realistic value, most fields away from their defaults; its JSON is its
struct's golden file (:mod:`support.golden`)."""

from __future__ import annotations

from qmk.qec.codes import ColumnLaw
from qmk.qec.logical import Calibration
from qmk.qec.params import QubitParams
from qmk.qec.physics import DecoderPart, ErrorBudgetPart, PhysicsConfig, QecSchemePart

PHYSICS_CONFIG = PhysicsConfig(
    qec_scheme=QecSchemePart(
        code_family="surface_code",
        code_distance=9,
        logical_cycle_time_us=1.0,
        physical_qubit_count=162,
    ),
    error_budget=ErrorBudgetPart(
        physical_gate_error_rate=0.001,
        measurement_error_rate=0.01,
        idle_error_rate=0.0001,
        t1_us=100.0,
        t2_us=80.0,
    ),
    decoder=DecoderPart(max_syndrome_weight=10, cycle_time_us=0.1),
)

QEC_SCHEME_PART = QecSchemePart(
    code_family="surface_code", code_distance=9, logical_cycle_time_us=1.0, physical_qubit_count=162
)

ERROR_BUDGET_PART = ErrorBudgetPart(
    physical_gate_error_rate=0.001,
    measurement_error_rate=0.01,
    idle_error_rate=0.0001,
    t1_us=100.0,
    t2_us=80.0,
)

DECODER_PART = DecoderPart(max_syndrome_weight=10, cycle_time_us=0.1)

COLUMN_LAW = ColumnLaw(
    prefactor=0.946,
    column_factor=15.32,
    damping=35.1,
    source=(
        "fitted to stim memory experiments of qmk.experim"
        "ents.circuits' bacon_shor circuits, see docs/qec"
        ".md"
    ),
)

CALIBRATION = Calibration(
    family="surface_code",
    crossing_prefactor=0.0712,
    error_correction_threshold=0.0108,
    crossing_prefactor_sigma=0.004,
    error_correction_threshold_sigma=0.0003,
    source=(
        "qmk qec calibrate --code surface_code --distances 3,5,7 --shots 200000 --seed 20260501"
    ),
)

QUBIT_PARAMS = QubitParams(
    name="qubit_gate_ns_e4_coherent",
    instruction_set="gate_based",
    one_qubit_measurement_time=100,
    t_gate_time=50,
    one_qubit_measurement_error_rate=0.0001,
    t_gate_error_rate=0.0001,
    idle_error_rate=0.0001,
    one_qubit_gate_time=50,
    two_qubit_gate_time=50,
    one_qubit_gate_error_rate=0.0001,
    two_qubit_gate_error_rate=0.0001,
    t1_ns=100000.0,
    t2_ns=80000.0,
)


#: Every example of this room.
EXAMPLES = (
    PHYSICS_CONFIG,
    QEC_SCHEME_PART,
    ERROR_BUDGET_PART,
    DECODER_PART,
    COLUMN_LAW,
    CALIBRATION,
    QUBIT_PARAMS,
)
