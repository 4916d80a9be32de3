"""The logical-qubit layer: qubit technologies, QEC schemes, noise and logical error rates.

Every virtual qubit of a QVM program runs under a code profile such as
``logical:surface_code(d=9)``. This package turns a profile and a physical
qubit technology into what the kernel needs. That is the logical error probability
per logical cycle, the logical cycle time, the physical qubits per logical
qubit and the decoder rounds per cycle. It is also the logical Pauli channel of a
span of cycles, and how many cycles each logical operation takes. Its numbers agree
with the Azure Quantum Resource Estimator (QRE) wherever QRE has them.

- :mod:`qmk.qec.values` -- the plain values :class:`QubitParams` and :class:`Calibration`.
- :mod:`qmk.qec.params` -- QRE's six predefined :class:`QubitParams` sets.
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

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qmk.qec.codes import SCHEMES, QecScheme, scheme_for
    from qmk.qec.errors import CODES, QECError
    from qmk.qec.formula import Formula
    from qmk.qec.logical import (
        DEFAULT_PROFILE,
        DEFAULT_QUBIT,
        OP_CYCLES,
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
    from qmk.qec.params import GATE_BASED, MAJORANA, QUBIT_PARAMS, qubit_params
    from qmk.qec.values import Calibration, QubitParams

#: Where each name of the package lives: it loads on first use, so a module of the
#: layer (:mod:`qmk.qec.values`, which the kernel process loads) loads alone.
_WHERE: dict[str, str] = {
    "CODES": "qmk.qec.errors",
    "Calibration": "qmk.qec.values",
    "DEFAULT_PROFILE": "qmk.qec.logical",
    "DEFAULT_QUBIT": "qmk.qec.logical",
    "Depolarizing": "qmk.qec.noise",
    "Formula": "qmk.qec.formula",
    "GATE_BASED": "qmk.qec.params",
    "GateNoise": "qmk.qec.noise",
    "IdleNoise": "qmk.qec.noise",
    "LogicalModel": "qmk.qec.logical",
    "MAJORANA": "qmk.qec.params",
    "MeasurementNoise": "qmk.qec.noise",
    "NoiseModel": "qmk.qec.noise",
    "NoiseStack": "qmk.qec.noise",
    "OP_CYCLES": "qmk.qec.logical",
    "OpCycles": "qmk.qec.logical",
    "PauliRates": "qmk.qec.logical",
    "QECError": "qmk.qec.errors",
    "QUBIT_PARAMS": "qmk.qec.params",
    "QecScheme": "qmk.qec.codes",
    "QubitParams": "qmk.qec.values",
    "SCHEMES": "qmk.qec.codes",
    "logical_model": "qmk.qec.logical",
    "op_cycles": "qmk.qec.logical",
    "physical_error_rate": "qmk.qec.noise",
    "qubit_params": "qmk.qec.params",
    "scheme_for": "qmk.qec.codes",
    "syndrome_bits_per_round": "qmk.qec.logical",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is not None:
        return getattr(import_module(where), name)
    if name.isidentifier() and not name.startswith("_"):
        try:  # a module of the package (``qmk.qec.noise``) that nothing imported yet
            return import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
