"""The logical-qubit layer: qubit technologies, QEC schemes, noise and logical error rates.

Every virtual qubit of a QVM program runs under a code profile such as
``logical:surface_code(d=9)``. This package turns a profile and a physical
qubit technology into what the kernel needs. That is the logical error probability
per logical cycle, the logical cycle time, the physical qubits per logical
qubit and the decoder rounds per cycle. It is also the logical Pauli channel of a
span of cycles, and how many cycles each logical operation takes. Its numbers agree
with the Azure Quantum Resource Estimator (QRE) wherever QRE has them.

- :mod:`qmk.qec.params` -- :class:`QubitParams` and QRE's six predefined sets.
- :mod:`qmk.qec.codes` -- :class:`QecScheme` per code family and instruction set.
- :mod:`qmk.qec.noise` -- physical error models feeding the physical error rate.
- :mod:`qmk.qec.logical` -- :class:`LogicalModel`, :func:`logical_model`, the op-cycle table.

Physical resource estimates built on this layer live in :mod:`qmk.estimate`
(``docs/estimation.md``); memory experiments in :mod:`qmk.experiments`.

>>> from qmk.qec import logical_model, qubit_params
>>> m = logical_model("logical:surface_code(d=9)", "qubit_gate_ns_e3")
>>> m.physical_qubits_per_logical, m.cycle_time_ns, f"{m.logical_error_per_cycle:.1e}"
(162, 3600, '3.0e-07')
>>> logical_model("logical:floquet_code(d=9)", "qubit_maj_ns_e4").physical_qubits_per_logical
388
>>> m.pauli_error(m.op_cycles("APPLY_CNOT")).px == m.logical_error_per_cycle / 3
True
>>> logical_model("logical:floquet_code(d=9)")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
qmk.qec.errors.QECError: QC105 scheme-not-supported: floquet_code has no scheme for gate_based ...
"""

from qmk.qec.codes import SCHEMES, QecScheme, scheme_for
from qmk.qec.errors import CODES, QECError
from qmk.qec.formula import Formula
from qmk.qec.logical import (
    DEFAULT_PROFILE,
    DEFAULT_QUBIT,
    OP_CYCLES,
    Calibration,
    LogicalModel,
    OpCycles,
    PauliRates,
    logical_model,
    op_cycles,
    syndrome_bits_per_round,
)
from qmk.qec.noise import (
    Depolarizing,
    GateNoise,
    IdleNoise,
    MeasurementNoise,
    NoiseModel,
    NoiseStack,
    physical_error_rate,
)
from qmk.qec.params import GATE_BASED, MAJORANA, QUBIT_PARAMS, QubitParams, qubit_params

__all__ = [
    "CODES",
    "DEFAULT_PROFILE",
    "DEFAULT_QUBIT",
    "GATE_BASED",
    "MAJORANA",
    "OP_CYCLES",
    "QUBIT_PARAMS",
    "SCHEMES",
    "Calibration",
    "Depolarizing",
    "Formula",
    "GateNoise",
    "IdleNoise",
    "LogicalModel",
    "MeasurementNoise",
    "NoiseModel",
    "NoiseStack",
    "OpCycles",
    "PauliRates",
    "QECError",
    "QecScheme",
    "QubitParams",
    "logical_model",
    "op_cycles",
    "physical_error_rate",
    "qubit_params",
    "scheme_for",
    "syndrome_bits_per_round",
]
