"""QuTiP behind the engine protocol: density matrices, and open-system (Lindblad) evolution.

:class:`QutipEngine` holds a density matrix (QMK keeps it between calls; QuTiP applies
each segment of gates as ``U rho U^dagger`` with operators expanded onto the register by
``qutip.expand_operator``). Beside the protocol it applies Kraus channels exactly
(:meth:`~qmk.engines.adapters._segments.SegmentEngine.apply_kraus`) and evolves some of
its qubits under a Hamiltonian with collapse operators for a time
(:meth:`QutipEngine.evolve`): the analog step a neutral-atom device needs between gates
(Rydberg drive, decay, dephasing).

:func:`evolve_open` is that step on its own: ``rho(t)`` under the Lindblad master
equation, by ``qutip.mesolve``.

Install with ``pip install 'quantum-microkernel[qutip]'``.

>>> import pytest; _ = pytest.importorskip("qutip")
>>> import numpy as np
>>> one = np.diag([0.0, 1.0]).astype(complex)           # |1><1|
>>> lower = np.array([[0, 1], [0, 0]], dtype=complex)   # sigma-: |1> -> |0>
>>> rho = evolve_open(one, np.zeros((2, 2)), [np.sqrt(2.0) * lower], duration=0.5)
>>> round(float(rho[1, 1].real), 6), round(float(np.exp(-1.0)), 6)  # P(1) = exp(-gamma t)
(0.367879, 0.367879)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from qmk import defaults
from qmk.engines.adapters._segments import SegmentEngine, SegmentGate, dense_gate
from qmk.engines.base import EngineError

#: mesolve's tolerances: tight enough for the conformance checks' 1e-7.
ATOL = 1e-10
RTOL = 1e-8


def _qutip() -> Any:
    try:
        import qutip
    except ImportError:  # pragma: no cover - the registry reports it first
        raise EngineError.of(
            "engine-unavailable",
            "qutip is not installed (pip install 'quantum-microkernel[qutip]')",
        ) from None
    return qutip


def evolve_open(
    rho: np.ndarray,
    hamiltonian: np.ndarray,
    collapse: Sequence[np.ndarray] = (),
    *,
    duration: float,
    steps: int = 2,
) -> np.ndarray:
    """``rho`` after ``duration`` under the Lindblad master equation, by ``qutip.mesolve``.

    ``d rho/dt = -i [H, rho] + sum_k (C_k rho C_k^dagger - {C_k^dagger C_k, rho} / 2)``,
    with ``hbar = 1``: ``H`` in angular frequency (rad per unit time) and each collapse
    operator ``C_k = sqrt(rate) * L_k`` in the units of ``duration``.

    Args:
        rho: the initial density matrix (``2**n`` square; qubit 0 most significant).
        hamiltonian: ``H``, the same shape (time-independent).
        collapse: the collapse operators ``C_k``, the same shape.
        duration: how long to evolve (>= 0).
        steps: time points mesolve reports (the last is returned; more do not change it).

    Returns:
        The density matrix at ``duration`` (complex128).

    Raises:
        EngineError: ``QE105 engine-misuse`` for shapes that differ or are not ``2**n``
            square, or a negative duration.
    """
    qutip = _qutip()
    start = np.asarray(rho, dtype=np.complex128)
    size = start.shape[0]
    n = size.bit_length() - 1
    operators = [np.asarray(hamiltonian, dtype=np.complex128)]
    operators += [np.asarray(c, dtype=np.complex128) for c in collapse]
    if (
        start.shape != (size, size)
        or size != 2**n
        or any(o.shape != start.shape for o in operators)
    ):
        raise EngineError.of(
            "engine-misuse",
            f"rho, the Hamiltonian and collapse operators must be 2**n square alike, got "
            f"{[start.shape, *(o.shape for o in operators)]}",
        )
    if not math.isfinite(duration) or duration < 0:
        raise EngineError.of("engine-misuse", f"duration must be >= 0, got {duration!r}")
    if duration == 0:
        return start.copy()
    dims = [[2] * n, [2] * n]
    h, *cs = (qutip.Qobj(o, dims=dims) for o in operators)
    result = qutip.mesolve(
        h,
        qutip.Qobj(start, dims=dims),
        np.linspace(0.0, float(duration), max(int(steps), 2)),
        c_ops=cs,
        options={"atol": ATOL, "rtol": RTOL, "store_states": True},
    )
    return np.asarray(result.states[-1].full(), dtype=np.complex128)


class QutipEngine(SegmentEngine):
    """A QuTiP density-matrix engine (see the module docstring)."""

    name: ClassVar[str] = defaults.QUTIP
    density: ClassVar[bool] = True

    def _setup(self) -> None:
        self._qutip = _qutip()

    def _evolve(self, state: np.ndarray, n: int, gates: Sequence[SegmentGate]) -> np.ndarray:
        qutip = self._qutip
        dims = [[2] * n, [2] * n]
        rho = qutip.Qobj(state.astype(np.complex128), dims=dims)
        for name, axes, params in gates:
            k = len(axes)
            local = qutip.Qobj(dense_gate(name, params), dims=[[2] * k, [2] * k])
            full = qutip.expand_operator(local, dims=[2] * n, targets=list(axes))
            rho = full * rho * full.dag()
        return np.asarray(rho.full())

    def evolve(
        self,
        qubits: Sequence[int],
        hamiltonian: np.ndarray,
        collapse: Sequence[np.ndarray] = (),
        *,
        duration: float,
    ) -> None:
        """Evolve ``qubits`` (the others idle) for ``duration`` under ``hamiltonian`` and
        ``collapse`` operators on those qubits (``2**len(qubits)`` square, ``qubits[0]``
        most significant), by :func:`evolve_open`.

        >>> import pytest; _ = pytest.importorskip("qutip")
        >>> engine = QutipEngine(seed=0)
        >>> q = engine.allocate()
        >>> x = np.array([[0, 1], [1, 0]], dtype=complex)
        >>> engine.evolve([q], 0.5 * x, duration=np.pi)  # a pi pulse at Rabi rate 1
        >>> round(engine.probability(q), 6)
        1.0
        """
        axes = [self._axis(q) for q in qubits]
        if len(set(axes)) != len(axes) or not axes:
            raise EngineError.of(
                "engine-misuse", f"evolve needs distinct live qubits, got {qubits}"
            )
        self._flush()
        qutip = self._qutip
        n = len(self._order)
        k = len(axes)

        def expand(matrix: np.ndarray) -> np.ndarray:
            local = qutip.Qobj(np.asarray(matrix, dtype=np.complex128), dims=[[2] * k, [2] * k])
            return np.asarray(qutip.expand_operator(local, dims=[2] * n, targets=axes).full())

        for matrix in (hamiltonian, *collapse):
            if np.asarray(matrix).shape != (2**k, 2**k):
                raise EngineError.of(
                    "engine-misuse",
                    f"operators on {k} qubits are {2**k}x{2**k}, got {np.asarray(matrix).shape}",
                )
        self._state = evolve_open(
            self._state, expand(hamiltonian), [expand(c) for c in collapse], duration=duration
        ).astype(self._dtype)


__all__ = ["QutipEngine", "evolve_open"]
