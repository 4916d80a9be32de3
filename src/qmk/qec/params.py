"""Physical qubit parameters: the six predefined sets of the Azure Quantum Resource Estimator.

A :class:`QubitParams` describes a physical qubit technology by its operation
times (integer nanoseconds) and error rates. The six sets in
:data:`QUBIT_PARAMS` copy the Azure Quantum Resource Estimator (QRE) exactly:
the values are those of ``GateBasedPhysicalQubit::qubit_gate_*`` and
``MajoranaQubit::qubit_maj_*`` in ``source/resource_estimator/src/system/modeling/
physical_qubit.rs`` of microsoft/qsharp, as documented at
https://learn.microsoft.com/azure/quantum/overview-resources-estimator.

There are two instruction sets. A ``gate_based`` qubit has one- and two-qubit
gates and single-qubit measurement; a ``majorana`` qubit has single-qubit and
two-qubit joint measurements, whose error rates QRE splits into a *process*
part (the error the measurement leaves on the qubits) and a *readout* part (a
wrong outcome). Here the ``*_measurement_error_rate`` fields are the process
rates and ``*_readout_error_rate`` the readout rates; a readout rate left at
``None`` equals its process rate (QRE's ``"simple"`` form).

The rate the QEC formula uses is :attr:`QubitParams.physical_error_rate`:
QRE's ``max(clifford_error_rate, readout_error_rate)``. For gate-based qubits, the
Clifford rate is the largest of the one-qubit gate, two-qubit gate and idle rates, and
the readout rate is the measurement rate. For Majorana qubits the Clifford rate is the
largest of the idle and the two measurement *process* rates, and the readout rate the
larger of the two *readout* rates.
The T-gate rate never enters it (T states come from distillation).

``t1_ns`` and ``t2_ns`` are optional coherence times. QRE does not use them;
:class:`qmk.qec.noise.IdleNoise` turns them into an idle error rate.

>>> q = qubit_params("qubit_gate_ns_e3")
>>> q.two_qubit_gate_time, q.one_qubit_measurement_time, q.physical_error_rate
(50, 100, 0.001)
>>> qubit_params("qubit_maj_ns_e6").physical_error_rate
1e-06
>>> qubit_params("qubit_gate_ns_e5")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
qmk.qec.errors.QECError: QC101 unknown-qubit-params: no qubit parameter set 'qubit_gate_ns_e5'; ...
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from qmk.qec.errors import QECError
from qmk.qec.values import _RATES as _RATES
from qmk.qec.values import GATE_BASED as GATE_BASED
from qmk.qec.values import INSTRUCTION_SETS as INSTRUCTION_SETS
from qmk.qec.values import MAJORANA as MAJORANA
from qmk.qec.values import QubitParams as QubitParams
from qmk.qec.values import check_fields as check_fields
from qmk.qec.values import qubit_of


def _gate_based(
    name: str, *, time: int, rate: float, t_rate: float, measure_time: int = 100
) -> QubitParams:
    return QubitParams(
        name=name,
        instruction_set=GATE_BASED,
        one_qubit_measurement_time=measure_time,
        one_qubit_gate_time=time,
        two_qubit_gate_time=time,
        t_gate_time=time,
        one_qubit_measurement_error_rate=rate,
        one_qubit_gate_error_rate=rate,
        two_qubit_gate_error_rate=rate,
        t_gate_error_rate=t_rate,
        idle_error_rate=rate,
    )


def _majorana(name: str, *, rate: float, t_rate: float) -> QubitParams:
    return QubitParams(
        name=name,
        instruction_set=MAJORANA,
        one_qubit_measurement_time=100,
        two_qubit_joint_measurement_time=100,
        t_gate_time=100,
        one_qubit_measurement_error_rate=rate,
        one_qubit_measurement_readout_error_rate=rate,
        two_qubit_joint_measurement_error_rate=rate,
        two_qubit_joint_measurement_readout_error_rate=rate,
        t_gate_error_rate=t_rate,
        idle_error_rate=rate,
    )


#: The six predefined qubit parameter sets of QRE, by name, exactly as QRE defines them.
#: ``ns``/``us``: operation times in nanoseconds/microseconds; ``e3``/``e4``/``e6``: Clifford
#: and measurement error rates of 1e-3/1e-4/1e-6.
QUBIT_PARAMS: Mapping[str, QubitParams] = MappingProxyType(
    {
        params.name: params
        for params in (
            _gate_based("qubit_gate_ns_e3", time=50, rate=1e-3, t_rate=1e-3),
            _gate_based("qubit_gate_ns_e4", time=50, rate=1e-4, t_rate=1e-4),
            _gate_based(
                "qubit_gate_us_e3", time=100_000, rate=1e-3, t_rate=1e-6, measure_time=100_000
            ),
            _gate_based(
                "qubit_gate_us_e4", time=100_000, rate=1e-4, t_rate=1e-6, measure_time=100_000
            ),
            _majorana("qubit_maj_ns_e4", rate=1e-4, t_rate=0.05),
            _majorana("qubit_maj_ns_e6", rate=1e-6, t_rate=0.01),
        )
    }
)


def qubit_params(name: str | QubitParams | Mapping[str, Any]) -> QubitParams:
    """The predefined qubit parameter set called ``name`` (a QubitParams passes through;
    custom parameters' JSON, as a run request carries them, is read: :func:`qubit_of`).

    Args:
        name: a key of :data:`QUBIT_PARAMS`, e.g. ``"qubit_gate_ns_e3"``.

    Returns:
        The parameter set.

    Raises:
        QECError: ``QC101 unknown-qubit-params`` when no set has that name.
    """
    if not isinstance(name, str):
        custom = qubit_of(name)
        assert isinstance(custom, QubitParams)  # what is no name is custom parameters
        return custom
    params = QUBIT_PARAMS.get(name)
    if params is None:
        raise QECError.of(
            "unknown-qubit-params",
            f"no qubit parameter set {name!r}; known: {', '.join(QUBIT_PARAMS)}",
            name=str(name),
        )
    return params
