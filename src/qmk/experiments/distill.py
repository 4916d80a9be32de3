"""Magic-state distillation simulated in stim: noisy injected T states, real Clifford circuits.

A T state is not a stabilizer state, so stim cannot hold it; but a twirled noisy
input is the ideal ``|T>`` with a Z error of probability ``p``
(:data:`qmk.qec.distill.INPUT_ERROR_PAULI`), and every T rotation of a 15-to-1
protocol is diagonal, so those Z errors commute with it. The circuit stim runs
is the protocol's Clifford circuit with each T rotation replaced by its error
channel: the ideal rotations would only change the output's (unmeasured) phase,
never a check's outcome or the output's error. A run is accepted when no
detector fires; the observable flips when the delivered state is ``Z|T>``
instead of ``|T>``. Both protocols of :data:`qmk.qec.distill.PROTOCOLS`:

- ``15-to-1`` (the estimator's "RM prep" unit): 15 qubits, the [[15, 1, 3]]
  code's ``|+>_L`` by a CNOT encoder, ``Z_ERROR(p)`` on each qubit where the
  transversal T acts, all qubits measured in X; the 4 X checks are detectors,
  the logical X (all 15) the observable.
- ``15-to-1-space-efficient`` (Litinski's 5-qubit protocol): 5 qubits in
  ``|+>``, 15 pi/8 rotations of Z-type Pauli products, each a consumed T state
  whose Z error is a correlated error on the rotation's support (``E(p)``),
  qubits 1-4 measured in X as detectors and qubit 5's X as the observable.

:func:`run_distillation` samples a circuit and returns counts with Wilson
intervals (95% unless told).

>>> r = run_distillation("15-to-1", input_error=0.05, shots=20_000, seed=3)
>>> r.shots, r.accepted > 0
(20000, True)
>>> low, high = r.acceptance_interval
>>> low <= r.acceptance_rate <= high
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from qmk.experiments.memory import DEFAULT_CONFIDENCE, wilson_interval
from qmk.qec.distill import (
    DistillationProtocol,
    FactoryFigures,
    check_input_error,
    figures_of,
    protocol,
)
from qmk.qec.errors import QECError

if TYPE_CHECKING:
    import stim

#: Shots sampled at once.
CHUNK = 1 << 16


def _row_reduce(rows: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    """Reduced row echelon form over GF(2) and the pivot column of each row."""
    rows = [list(r) for r in rows]
    pivots: list[int] = []
    top = 0
    for col in range(len(rows[0])):
        pick = next((i for i in range(top, len(rows)) if rows[i][col]), None)
        if pick is None:
            continue
        rows[top], rows[pick] = rows[pick], rows[top]
        for i in range(len(rows)):
            if i != top and rows[i][col]:
                rows[i] = [a ^ b for a, b in zip(rows[i], rows[top], strict=True)]
        pivots.append(col)
        top += 1
        if top == len(rows):
            break
    return rows[:top], pivots


def _transversal(proto: DistillationProtocol, p: float) -> stim.Circuit:
    """The code's ``|+>_L`` (X-stabilized by the checks and the logical row), Z errors, MX."""
    import stim

    n = proto.inputs
    generators, pivots = _row_reduce([list(r) for r in (*proto.checks, proto.logical)])
    c = stim.Circuit()
    c.append("R", range(n))
    c.append("H", pivots)
    c.append("TICK")
    # In reduced echelon form each pivot's row has no other pivot, so spreading each pivot
    # by CNOTs gives the uniform superposition over the generators' span.
    for row, pivot in zip(generators, pivots, strict=True):
        targets = [j for j, bit in enumerate(row) if bit and j != pivot]
        c.append("CX", [q for j in targets for q in (pivot, j)])
        c.append("TICK")
    c.append("Z_ERROR", range(n), p)  # the transversal T layer's twirled input errors
    c.append("TICK")
    c.append("MX", range(n))
    for check in proto.checks:
        c.append("DETECTOR", [stim.target_rec(j - n) for j, bit in enumerate(check) if bit])
    c.append(
        "OBSERVABLE_INCLUDE", [stim.target_rec(j - n) for j, b in enumerate(proto.logical) if b], 0
    )
    return c


def _rotations(proto: DistillationProtocol, p: float) -> stim.Circuit:
    """Litinski's layout: one qubit per check plus the output, one rotation per input."""
    import stim

    k = len(proto.checks)
    n = k + 1
    c = stim.Circuit()
    c.append("RX", range(n))
    c.append("TICK")
    for i in range(proto.inputs):
        support = [j for j in range(k) if proto.checks[j][i]]
        if proto.logical[i]:
            support.append(k)
        # The pi/8 rotation exp(-i pi/8 P) itself is diagonal and leaves every X outcome of
        # the ideal run fixed; its consumed T state's error applies P.
        c.append("E", [stim.target_z(q) for q in support], p)
        c.append("TICK")
    c.append("MX", range(n))
    for j in range(k):
        c.append("DETECTOR", [stim.target_rec(j - n)])
    c.append("OBSERVABLE_INCLUDE", [stim.target_rec(-1)], 0)
    return c


_BUILDERS = {"15-to-1": _transversal, "15-to-1-space-efficient": _rotations}


def distillation_circuit(proto: str | DistillationProtocol, input_error: float) -> stim.Circuit:
    """The stim circuit of ``proto`` with each injected T state in error with ``input_error``.

    >>> c = distillation_circuit("15-to-1-space-efficient", 0.01)
    >>> c.num_qubits, c.num_detectors, c.num_observables
    (5, 4, 1)
    >>> distillation_circuit("15-to-1", 0.0).num_qubits
    15

    Raises:
        QECError: ``QC111`` for an unknown protocol, ``QC103`` for a rate outside [0, 0.5].
    """
    proto = protocol(proto)
    return _BUILDERS[proto.name](proto, check_input_error(input_error))


@dataclass(frozen=True, slots=True, kw_only=True)
class DistillationResult:
    """Shots of one protocol at one input error: how many were accepted and how many failed.

    Attributes:
        protocol: the protocol's name.
        input_error: ``p`` of each injected T state.
        shots: runs sampled.
        accepted: runs no detector rejected.
        errors: accepted runs whose output was flipped.
        seed: stim's seed.
        confidence: the level of the Wilson intervals.
    """

    protocol: str
    input_error: float
    shots: int
    accepted: int
    errors: int
    seed: int | None
    confidence: float = DEFAULT_CONFIDENCE

    @property
    def acceptance_rate(self) -> float:
        """Accepted runs per shot."""
        return self.accepted / self.shots

    @property
    def acceptance_interval(self) -> tuple[float, float]:
        """The Wilson interval of :attr:`acceptance_rate`."""
        return wilson_interval(self.accepted, self.shots, self.confidence)

    @property
    def output_error_rate(self) -> float:
        """Flipped outputs per accepted run (NaN when none was accepted)."""
        return self.errors / self.accepted if self.accepted else math.nan

    @property
    def output_error_interval(self) -> tuple[float, float]:
        """The Wilson interval of :attr:`output_error_rate` over the accepted runs."""
        return wilson_interval(self.errors, self.accepted, self.confidence)

    def figures(self) -> FactoryFigures:
        """The measured rates as :class:`~qmk.qec.distill.FactoryFigures`."""
        return figures_of(
            protocol(self.protocol),
            self.input_error,
            self.output_error_rate,
            self.acceptance_rate,
            "simulated",
        )

    def to_json(self) -> dict[str, Any]:
        """The result as plain JSON (NaN as null)."""
        rate = self.output_error_rate
        return {
            "protocol": self.protocol,
            "input_error": self.input_error,
            "shots": self.shots,
            "seed": self.seed,
            "accepted": self.accepted,
            "errors": self.errors,
            "confidence": self.confidence,
            "interval": "wilson",
            "acceptance_rate": self.acceptance_rate,
            "acceptance_interval": list(self.acceptance_interval),
            "output_error_rate": None if math.isnan(rate) else rate,
            "output_error_interval": list(self.output_error_interval),
        }


def run_distillation(
    proto: str | DistillationProtocol,
    *,
    input_error: float,
    shots: int,
    seed: int | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> DistillationResult:
    """Sample ``shots`` runs of ``proto``'s circuit and count acceptances and output errors.

    The same protocol, input error, shots and seed give the same counts.

    Raises:
        QECError: ``QC111`` for an unknown protocol; ``QC103`` for ``input_error`` outside
            [0, 0.5], ``shots`` < 1 or a confidence outside (0, 1).
    """
    proto = protocol(proto)
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise QECError.of("bad-parameter", f"shots must be a whole number >= 1, got {shots!r}")
    if not 0 < confidence < 1:
        raise QECError.of("bad-parameter", f"confidence must lie in (0, 1), got {confidence!r}")
    circuit = distillation_circuit(proto, input_error)
    sampler = circuit.compile_detector_sampler(seed=seed)
    done = accepted = errors = 0
    while done < shots:
        take = min(CHUNK, shots - done)
        dets, obs = sampler.sample(take, bit_packed=True, separate_observables=True)
        ok = ~np.any(dets, axis=1)
        accepted += int(np.count_nonzero(ok))
        errors += int(np.count_nonzero(ok & np.any(obs, axis=1)))
        done += take
    return DistillationResult(
        protocol=proto.name,
        input_error=float(input_error),
        shots=shots,
        accepted=accepted,
        errors=errors,
        seed=seed,
        confidence=confidence,
    )
